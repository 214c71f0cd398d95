"""Continual evaluation (De Lange, van de Ven & Tuytelaars, ICLR 2023): train on a task
sequence and evaluate on the test sets of all tasks seen so far every ``eval_every`` iterations.

One *iteration* is one ``learn`` call on a mini-batch of ``batch_size`` training samples of the
current task (``epochs`` shuffled passes per task). An evaluation point is taken every
``eval_every`` iterations and always at the last iteration of each task. Evaluation is
vectorised: the test sets of the seen tasks (optionally a fixed seeded subsample of each) are
concatenated once, so a point costs ONE ``predict`` (``predict_proba`` for task-incremental
sequences, whose prediction is restricted to the task's classes) on the prefix of the seen
tasks, and per-task accuracies come from one ``np.add.reduceat``.

Learners with task hooks get them: ``begin_task(task, classes)`` before a task's first
iteration (``classes`` is the task's label codes in a task-incremental sequence, else
``None``) and ``end_task(X_train, y_train)`` after its last one (see
:mod:`adaptloop.learners.continual`). Learners without them are trained as plain streams.
The evaluation point at a task's last iteration is taken after its ``end_task``, so what
``end_task`` changes (LiNeS' layer scaling, FSA's switch to its LDA head) shows in that task's
own evaluation; strategies whose ``end_task`` only stores (replay memories, EWC's Fisher,
LwF's teacher) score the same before and after it.

Task identity at test time: in a task-incremental sequence (``scenario = "task"``) a
:class:`~adaptloop.learners.base.TaskConditioned` learner (the hypernetwork ``hypernet``, the
per-task sparse networks ``dst``) is asked ``predict_proba_task(X, k)`` on task ``k``'s test
set, one call per seen task; every other learner gets one ``predict_proba`` over all seen
test sets. Either way the arg-max is taken over the task's own classes. In class- and
domain-incremental sequences nobody is told the task: every learner gets ``predict``.

Metrics (paper section 3 and the authors' code, ``src/eval/continual_eval_metrics.py``;
``A(E_i, f_n)`` is the accuracy on task ``i``'s test set at evaluation point ``n``; ``end_k`` the
last iteration of task ``k``; ``T`` tasks):

- ``avg_acc``: ``1/T sum_i A(E_i, f_{end_T})`` -- the usual final average accuracy;
  ``avg_acc_task_ends``: the same over the tasks seen, at the end of each task.
- ``min_acc`` (eq. 3): ``1/(T-1) sum_{i<T} min_n A(E_i, f_n)`` over points with
  ``end_i < n <= end_T``: the average worst accuracy of each previous task after it was learned
  (the code's ``TaskTrackingMINAccuracyPluginMetric``: every evaluation while another task trains).
- ``wc_acc`` (eq. 4): ``1/T A(E_T, f_{end_T}) + (1 - 1/T) min_acc`` (the code's
  ``WCACCPluginMetric``: the mean of the current task's accuracy and the old tasks' minima).
- ``wf`` (windowed forgetting, eq. 5; the code's ``WindowedForgettingPluginMetric``): for each
  task, a window of its last ``w`` *evaluations* (a deque of ``w`` accuracies, from the task's
  first evaluation on), the largest ``A_m - A_n`` over ``m < n`` in the window, maximised over
  training; then the mean over ALL tasks (the code averages every task's entry). With
  ``eval_every = 1`` the window spans ``w`` iterations.
- ``wp`` (windowed plasticity): the largest *increase* within a window of ``w`` evaluations,
  for each task over the points of its own training, averaged over all tasks. Deviation: the
  authors' ``WindowedPlasticityPluginMetric`` mirrors WF over every evaluation of a task
  (recoveries after a later switch count as plasticity too, and their first evaluation is
  before any update); here WP is the gain while the task is learned, the paper's reading.
- ``gaps`` (stability gap of ``eval_task`` 0 at each later task switch, see :func:`stability_gaps`).

Evaluation points: every ``eval_every`` iterations counted over the whole sequence, and at the
last iteration of each task. The authors' code evaluates at iterations whose index within the
epoch is a multiple of its frequency, and once before the first update; with ``eval_every =
1`` both evaluate after every iteration and, bar that first point, agree.

Results schema (``summary_json``, written by :func:`adaptloop.results.write_results`), which
reports rely on. A run covers one or more
task sequences, each over one or more seeds (a :class:`ContinualSuite`; a single
:class:`ContinualResult` is a suite of one):

- ``records.parquet``: one row per (sequence, seed, learner, evaluation point, evaluated task),
  columns (:data:`~adaptloop.results.schema.CONTINUAL_RECORD_COLUMNS`) ``sequence`` (str,
  the sequence's name), ``seed`` (int), ``learner`` (str),
  ``iteration`` (int, training iterations done so far), ``task`` (int, the task being trained
  at that point), ``eval_task`` (int, the task whose test set was evaluated), ``accuracy``
  (float).
- ``summary.json``: ``"kind": "continual"``, ``"eval_every"``, ``"windows"``, ``"seeds"``
  (the seeds run) and ``"sequences": {name: {"tasks"`` (task names), ``"task_boundaries"``
  (the iteration at which each task's training starts), ``"sequence"`` (scenario, classes and
  sizes per task), ``"learners": {learner: {...}}`` (over seeds, :func:`aggregate_seeds`),
  ``"seeds": {"<seed>": {"task_boundaries", "learners": {learner: {...}}}}`` (each run)``}}``.
  A run's learner entry holds ``"avg_acc", "avg_acc_task_ends", "min_acc", "wc_acc", "wf":
  {"<w>": ...}, "wp": {"<w>": ...}, "final_task_acc", "gaps", "max_gap", "train_seconds",
  "eval_seconds", "stored_samples"`` (past training samples the learner keeps at the end, see
  :class:`~adaptloop.learners.base.KeepsPastData`; None for a learner that does not say); the
  entry over seeds holds their means, with ``"std"`` (over seeds) of
  ``avg_acc``, ``min_acc``, ``wc_acc``, ``max_gap``, ``wf`` and ``wp``. The FIRST sequence's
  ``"tasks"``, ``"task_boundaries"``, ``"sequence"`` and ``"learners"`` are also at the top
  level, so readers of single-sequence runs keep working. Plus ``adaptloop_version``,
  ``created``, ``machine`` and any extra keys (``seed``...).
- ``experiment.toml``: the experiment as run.

>>> import numpy as np
>>> from adaptloop.learners.models.majority import MajorityClass
>>> from adaptloop.streams.tasks import split
>>> X = np.repeat(np.eye(4, dtype=np.float32), 8, axis=0)
>>> y = np.repeat(np.arange(4), 8)
>>> seq = split(X, y, X, y, [[0, 1], [2, 3]])
>>> result = continual_evaluation(seq, {"majority": MajorityClass(n_classes=4)}, batch_size=4)
>>> result.task_boundaries, result.records.num_rows  # 4 + 4 iterations; 4 x 1 + 4 x 2 rows
([0, 4], 12)
>>> result.summary["majority"]["final_task_acc"]  # all labels tie: it predicts 0
[0.5, 0.0]
>>> result.records.column_names[:2]
['sequence', 'seed']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from adaptloop.learners.base import KeepsPastData, Learner, TaskAware, TaskConditioned
from adaptloop.results import (
    CONTINUAL_RECORD_COLUMNS,
    Table,
    continual_tables,
    json_safe,
    run_metadata,
)
from adaptloop.streams.base import check_batch_size
from adaptloop.streams.tasks import TaskSequence

__all__ = [
    "ContinualResult",
    "ContinualSuite",
    "aggregate_seeds",
    "continual_evaluation",
    "continual_metrics",
    "min_acc",
    "stability_gaps",
    "wc_acc",
    "windowed_forgetting",
    "windowed_plasticity",
]


# -- metrics on accuracy curves -----------------------------------------------------------------
def _windowed_extreme(values: np.ndarray, window: int, sign: int) -> float:
    """max over n, and m with n - window < m < n, of sign * (values[m] - values[n])."""
    best = 0.0
    for n in range(1, len(values)):
        past = values[max(0, n - window + 1) : n]
        if len(past):
            best = max(best, float(sign * ((past.max() if sign > 0 else past.min()) - values[n])))
    return best


def windowed_forgetting(accuracy: np.ndarray, window: int) -> float:
    """Largest accuracy drop within a window of ``window`` consecutive evaluations (De Lange et
    al. 2023, eq. 5: the largest ``A_m - A_n``, ``m < n``, over a deque of the last ``window``
    accuracies, maximised over the curve).

    >>> windowed_forgetting(np.array([0.9, 0.5, 0.8, 0.9, 0.2]), window=2)
    0.7
    >>> windowed_forgetting(np.array([0.9, 0.5, 0.8, 0.9, 0.2]), window=5)
    0.7
    >>> windowed_forgetting(np.array([0.1, 0.5, 0.8]), window=3)
    0.0
    """
    return round(_windowed_extreme(np.asarray(accuracy, dtype=float), window, 1), 12)


def windowed_plasticity(accuracy: np.ndarray, window: int) -> float:
    """Largest accuracy gain within a window of ``window`` consecutive evaluations.

    >>> windowed_plasticity(np.array([0.1, 0.5, 0.3, 0.9]), window=2)
    0.6
    """
    return round(_windowed_extreme(np.asarray(accuracy, dtype=float), window, -1), 12)


def _task_ends(boundaries: Sequence[int], total: int) -> np.ndarray:
    return np.asarray(list(boundaries[1:]) + [total])


def min_acc(iterations: np.ndarray, accuracy: np.ndarray, boundaries: Sequence[int]) -> float:
    """Average over the previous tasks of their minimum accuracy after they were learned.

    ``accuracy`` is ``(points, tasks)`` (NaN where a task was not evaluated); ``boundaries``
    the iteration at which each task starts; the last point is the end of the last task.
    NaN with a single task.

    >>> its = np.array([1, 2, 3, 4])
    >>> acc = np.array([[0.6, np.nan], [0.9, np.nan], [0.4, 0.5], [0.7, 0.9]])
    >>> float(min_acc(its, acc, [0, 2]))
    0.4
    """
    iterations, accuracy = np.asarray(iterations), np.asarray(accuracy, dtype=float)
    ends = _task_ends(boundaries, int(iterations[-1]))
    n_tasks = accuracy.shape[1]
    if n_tasks < 2:
        return float("nan")
    minima = [np.nanmin(accuracy[iterations > ends[i], i]) for i in range(n_tasks - 1)]
    return float(np.mean(minima))


def wc_acc(current: float, min_accuracy: float, n_tasks: int) -> float:
    """Worst-case accuracy: ``1/T * current + (1 - 1/T) * min_acc`` (``current`` alone if T=1).

    >>> wc_acc(0.9, 0.4, 2)
    0.65
    """
    if n_tasks == 1:
        return float(current)
    return float(current / n_tasks + (1 - 1 / n_tasks) * min_accuracy)


def stability_gaps(
    iterations: np.ndarray,
    accuracy: np.ndarray,
    boundaries: Sequence[int],
    eval_task: int = 0,
    within: int = 50,
    recover: float = 0.95,
) -> list[dict]:
    """The stability gap of ``eval_task`` at each later task switch.

    For every task ``k > eval_task``: ``before`` is the accuracy at the last point before the
    switch, ``minimum`` the lowest accuracy within the first ``within`` iterations after it
    (reached at iteration ``iteration``), ``drop = before - minimum`` and ``recovery`` the
    iterations from the switch to the first point at or after that minimum where the accuracy
    is back to ``recover * before`` (``None`` if not before the next switch).

    >>> its = np.arange(1, 9)
    >>> acc = np.array([0.5, 1.0, 0.2, 0.4, 0.96, 0.9, 0.5, 0.6])[:, None]
    >>> stability_gaps(its, acc, [0, 2, 6], within=2)  # doctest: +NORMALIZE_WHITESPACE
    [{'switch': 2, 'task': 1, 'before': 1.0, 'minimum': 0.2, 'iteration': 3, 'drop': 0.8,
      'recovery': 3},
     {'switch': 6, 'task': 2, 'before': 0.9, 'minimum': 0.5, 'iteration': 7, 'drop': 0.4,
      'recovery': None}]
    """
    iterations, accuracy = np.asarray(iterations), np.asarray(accuracy, dtype=float)
    ends = _task_ends(boundaries, int(iterations[-1]))
    out = []
    for k in range(eval_task + 1, len(boundaries)):
        switch, stop = int(boundaries[k]), int(ends[k])
        before = float(accuracy[iterations <= switch, eval_task][-1])
        after = (iterations > switch) & (iterations <= min(switch + within, stop))
        if not after.any():
            continue
        low = int(np.argmin(np.where(after, accuracy[:, eval_task], np.inf)))
        minimum = float(accuracy[low, eval_task])
        later = (np.arange(len(iterations)) >= low) & (iterations <= stop)
        back = later & (accuracy[:, eval_task] >= recover * before - 1e-12)
        recovery = int(iterations[np.argmax(back)]) - switch if back.any() else None
        out.append(
            {
                "switch": switch,
                "task": k,
                "before": before,
                "minimum": minimum,
                "iteration": int(iterations[low]),
                "drop": round(before - minimum, 12),
                "recovery": recovery,
            }
        )
    return out


def continual_metrics(
    iterations: np.ndarray,
    accuracy: np.ndarray,
    boundaries: Sequence[int],
    windows: Sequence[int] = (10, 100),
) -> dict:
    """All metrics of one learner's curves (see the module docstring).

    >>> its = np.array([1, 2, 3, 4])
    >>> acc = np.array([[0.6, np.nan], [0.9, np.nan], [0.4, 0.5], [0.7, 0.9]])
    >>> m = continual_metrics(its, acc, [0, 2], windows=(2,))
    >>> m["avg_acc"], m["min_acc"], m["wc_acc"], m["wf"], m["wp"]
    (0.8, 0.4, 0.65, {'2': 0.25}, {'2': 0.35})
    """
    iterations, accuracy = np.asarray(iterations), np.asarray(accuracy, dtype=float)
    n_tasks = accuracy.shape[1]
    ends = _task_ends(boundaries, int(iterations[-1]))
    end_rows = [int(np.flatnonzero(iterations <= e)[-1]) for e in ends]
    final = accuracy[-1]
    minimum = min_acc(iterations, accuracy, boundaries)
    wf, wp = {}, {}
    for w in windows:
        drops = []
        for i in range(n_tasks):
            seen = ~np.isnan(accuracy[:, i])
            drops.append(windowed_forgetting(accuracy[seen, i], w))
        wf[str(w)] = float(np.mean(drops))
        gains = []
        for i in range(n_tasks):
            own = (iterations > boundaries[i]) & (iterations <= ends[i])
            gains.append(windowed_plasticity(accuracy[own, i], w))
        wp[str(w)] = float(np.mean(gains))
    return {
        "avg_acc": float(np.mean(final)),
        "avg_acc_task_ends": [
            float(np.nanmean(accuracy[r, : k + 1])) for k, r in enumerate(end_rows)
        ],
        "min_acc": minimum,
        "wc_acc": wc_acc(float(final[-1]), minimum, n_tasks),
        "wf": wf,
        "wp": wp,
        "final_task_acc": [float(a) for a in final],
    }


# -- the evaluation loop ----------------------------------------------------------------------
@dataclass
class ContinualResult:
    """Per-iteration accuracy records and per-learner metrics of a continual run."""

    sequence: TaskSequence
    task_boundaries: list[int]
    eval_every: int
    windows: list[int]
    records: pa.Table
    summary: dict[str, dict]
    seed: int = 0

    @property
    def task_names(self) -> list[str]:
        return self.sequence.task_names

    def curves(self, learner: str) -> tuple[np.ndarray, np.ndarray]:
        """``(iterations, accuracy (points, tasks))`` of one learner; NaN where not evaluated."""
        table = self.records.filter(pa.compute.equal(self.records["learner"], learner))
        its = table["iteration"].to_numpy()
        tasks = table["eval_task"].to_numpy()
        points, row = np.unique(its, return_inverse=True)
        acc = np.full((len(points), len(self.sequence)), np.nan)
        acc[row, tasks] = table["accuracy"].to_numpy()
        return points, acc

    def summary_json(self, **extra) -> dict:
        """The JSON-ready ``summary.json`` (that of a suite of this one run)."""
        return ContinualSuite.of(self).summary_json(**extra)

    def tables(self) -> list[Table]:
        """The summary tables (:func:`~adaptloop.results.tables.continual_tables`)."""
        return ContinualSuite.of(self).tables()


class _Evaluator:
    """The seen tasks' test sets, concatenated once; one prediction per evaluation point."""

    def __init__(self, sequence: TaskSequence, subsample: int | None, seed: int) -> None:
        rng = np.random.default_rng(seed)
        Xs, ys, masks = [], [], []
        for task in sequence:
            idx = np.arange(len(task.y_test))
            if subsample is not None and subsample < len(idx):
                idx = np.sort(rng.choice(len(idx), size=subsample, replace=False))
            Xs.append(task.X_test[idx])
            ys.append(task.y_test[idx])
            if sequence.scenario == "task":
                allowed = np.zeros((len(idx), sequence.n_classes), dtype=bool)
                allowed[:, list(task.classes)] = True
                masks.append(allowed)
        self.X = np.ascontiguousarray(np.concatenate(Xs), dtype=np.float32)
        self.y = np.concatenate(ys)
        self.offsets = np.cumsum([0] + [len(y) for y in ys])
        self.sizes = np.diff(self.offsets)
        self.allowed = np.concatenate(masks) if masks else None

    def __call__(self, learner: Learner, seen: int) -> np.ndarray:
        n = self.offsets[seen]
        if self.allowed is None:
            pred = learner.predict(self.X[:n])
        else:  # task-incremental: the arg-max over the task's own classes
            if isinstance(learner, TaskConditioned):  # told each test set's task
                lo, hi = self.offsets[:seen], self.offsets[1 : seen + 1]
                proba = np.concatenate(
                    [
                        learner.predict_proba_task(self.X[a:b], k)
                        for k, (a, b) in enumerate(zip(lo, hi, strict=True))
                    ]
                )
            else:
                proba = learner.predict_proba(self.X[:n])  # type: ignore[attr-defined]
            pred = np.where(self.allowed[:n], proba, -np.inf).argmax(axis=1)
        correct = (pred == self.y[:n]).astype(np.float64)
        return np.add.reduceat(correct, self.offsets[:seen]) / self.sizes[:seen]


class _Curve:
    """One learner's evaluation points: appended to its curve and to the record columns."""

    def __init__(
        self, evaluate: _Evaluator, learner: Learner, name: str, n_tasks: int, columns: dict
    ) -> None:
        self.evaluate, self.learner, self.name = evaluate, learner, name
        self.n_tasks, self.columns = n_tasks, columns
        self.iterations: list[int] = []
        self.rows: list[np.ndarray] = []
        self.seconds = 0.0

    def point(self, iteration: int, t: int) -> None:
        """Evaluate on the ``t + 1`` seen tasks (task ``t`` training) after ``iteration``."""
        t0 = time.perf_counter()
        accuracy = self.evaluate(self.learner, t + 1)
        self.seconds += time.perf_counter() - t0
        self.iterations.append(iteration)
        self.rows.append(np.pad(accuracy, (0, self.n_tasks - t - 1), constant_values=np.nan))
        self.columns["learner"] += [self.name] * (t + 1)
        self.columns["iteration"] += [iteration] * (t + 1)
        self.columns["task"] += [t] * (t + 1)
        self.columns["eval_task"] += list(range(t + 1))
        self.columns["accuracy"] += accuracy.tolist()


def _check_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def continual_evaluation(
    sequence: TaskSequence,
    learners: Mapping[str, Learner],
    batch_size: int = 16,
    epochs: int = 1,
    eval_every: int = 1,
    eval_subsample: int | None = None,
    windows: Sequence[int] = (10, 100),
    gap_within: int = 50,
    gap_recover: float = 0.95,
    seed: int = 0,
    on_iteration: Callable[[str, int], None] | None = None,
) -> ContinualResult:
    """Train each learner on the tasks in order, evaluating on all seen tasks as it goes.

    Every learner sees the same mini-batches (shuffled per task and epoch with ``seed``).
    ``eval_subsample``: evaluate on a fixed seeded subsample of that many test samples per
    task (``None``: the whole test sets). ``on_iteration(learner, iteration)`` is called after
    every iteration (progress bars). Timings (``train_seconds``: learn calls and task hooks;
    ``eval_seconds``: evaluation points) go into the summary.
    """
    batch_size = check_batch_size(batch_size)
    epochs = _check_int(epochs, "epochs")
    eval_every = _check_int(eval_every, "eval_every")
    if eval_subsample is not None:
        eval_subsample = _check_int(eval_subsample, "eval_subsample")
    windows = [_check_int(w, "windows") for w in windows]
    if not learners:
        raise ValueError("learners must name at least one learner")
    rng = np.random.default_rng(seed)
    orders = [[rng.permutation(len(t.y_train)) for _ in range(epochs)] for t in sequence]
    evaluate = _Evaluator(sequence, eval_subsample, seed)
    boundaries, start = [], 0
    for task in sequence:
        boundaries.append(start)
        start += epochs * -(-len(task.y_train) // batch_size)

    columns: dict[str, list] = {name: [] for name in CONTINUAL_RECORD_COLUMNS}
    summary = {}
    for name, learner in learners.items():
        train_seconds = 0.0
        iteration = 0
        curve = _Curve(evaluate, learner, name, len(sequence), columns)
        for t, task in enumerate(sequence):
            t0 = time.perf_counter()
            if isinstance(learner, TaskAware):
                learner.begin_task(t, task.classes if sequence.scenario == "task" else None)
            train_seconds += time.perf_counter() - t0
            n = len(task.y_train)
            for epoch, order in enumerate(orders[t]):
                X, y = task.X_train[order], task.y_train[order]
                for lo in range(0, n, batch_size):
                    t0 = time.perf_counter()
                    learner.learn(X[lo : lo + batch_size], y[lo : lo + batch_size])
                    train_seconds += time.perf_counter() - t0
                    iteration += 1
                    last = epoch == epochs - 1 and lo + batch_size >= n
                    if iteration % eval_every == 0 and not last:
                        curve.point(iteration, t)
                    if on_iteration is not None:
                        on_iteration(name, iteration)
            t0 = time.perf_counter()
            if isinstance(learner, TaskAware):
                learner.end_task(task.X_train, task.y_train)
            train_seconds += time.perf_counter() - t0
            curve.point(iteration, t)  # the task's last point: after end_task's edits
        iterations, rows, eval_seconds = curve.iterations, curve.rows, curve.seconds
        its, acc = np.asarray(iterations), np.vstack(rows)
        gaps = stability_gaps(its, acc, boundaries, 0, gap_within, gap_recover)
        summary[name] = {
            **continual_metrics(its, acc, boundaries, windows),
            "gaps": gaps,
            "max_gap": max((g["drop"] for g in gaps), default=None),
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "stored_samples": (
                int(learner.stored_samples) if isinstance(learner, KeepsPastData) else None
            ),
        }
    n_rows = len(columns["learner"])
    records = pa.table(
        {
            "sequence": pa.array([sequence.name] * n_rows, pa.string()),
            "seed": pa.array(np.full(n_rows, seed, dtype=np.int64)),
            "learner": pa.array(columns["learner"], pa.string()),
            "iteration": pa.array(columns["iteration"], pa.int64()),
            "task": pa.array(columns["task"], pa.int64()),
            "eval_task": pa.array(columns["eval_task"], pa.int64()),
            "accuracy": pa.array(columns["accuracy"], pa.float64()),
        }
    )
    return ContinualResult(sequence, boundaries, eval_every, windows, records, summary, int(seed))


# -- several sequences and seeds ----------------------------------------------------------------
AGGREGATED_STD = ("avg_acc", "min_acc", "wc_acc", "max_gap")
"""Scalar metrics whose standard deviation over seeds is recorded (``wf``, ``wp`` too)."""


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and population std over seeds; None when any seed has no value (None or NaN)."""
    if not values or any(v is None or not np.isfinite(v) for v in values):
        return None, None
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std())


def aggregate_seeds(runs: Sequence[dict]) -> dict:
    """One learner's metrics over seeds (``runs``: its summary entry in each seed's run).

    Every number becomes its mean over seeds (lists element-wise, ``wf`` / ``wp`` per window;
    None if a seed has none); ``"std"`` holds the population standard deviation of
    :data:`AGGREGATED_STD` and of ``wf`` / ``wp``. ``gaps`` are averaged per task switch;
    a switch's ``recovery`` is the mean over seeds if every seed recovered, else None, and
    ``recoveries`` lists each seed's (``iteration``, where the minimum is, is averaged too).

    >>> a = {"avg_acc": 0.8, "min_acc": 0.4, "wc_acc": 0.6, "max_gap": 0.2, "wf": {"10": 0.2},
    ...      "wp": {"10": 0.5}, "final_task_acc": [0.7, 0.9], "gaps": [{"switch": 5, "task": 1,
    ...      "before": 0.9, "minimum": 0.7, "iteration": 6, "drop": 0.2, "recovery": 4}],
    ...      "train_seconds": 1.0}
    >>> b = {**a, "avg_acc": 0.6, "final_task_acc": [0.5, 0.7], "gaps": [{**a["gaps"][0],
    ...      "recovery": None}]}
    >>> m = aggregate_seeds([a, b])
    >>> round(m["avg_acc"], 6), round(m["std"]["avg_acc"], 6)
    (0.7, 0.1)
    >>> [round(v, 6) for v in m["final_task_acc"]]
    [0.6, 0.8]
    >>> m["gaps"][0]["recovery"], m["gaps"][0]["recoveries"], m["std"]["wf"]
    (None, [4, None], {'10': 0.0})
    """
    first = runs[0]
    out: dict = {}
    std: dict = {}
    for key, value in first.items():
        if key == "gaps":
            continue
        if isinstance(value, dict):
            pairs = {w: _mean_std([r[key][w] for r in runs]) for w in value}
            out[key] = {w: m for w, (m, _) in pairs.items()}
            std[key] = {w: d for w, (_, d) in pairs.items()}
        elif isinstance(value, list):
            out[key] = [_mean_std([r[key][i] for r in runs])[0] for i in range(len(value))]
        elif value is None or isinstance(value, (int, float)):
            out[key], spread = _mean_std([r[key] for r in runs])
            if key in AGGREGATED_STD:
                std[key] = spread
    gaps = []
    for i, gap in enumerate(first.get("gaps") or []):
        per_seed = [r["gaps"][i] for r in runs if i < len(r["gaps"])]
        recoveries = [g["recovery"] for g in per_seed]
        entry = {"switch": gap["switch"], "task": gap["task"]}
        for key in ("before", "minimum", "iteration", "drop"):
            entry[key] = _mean_std([g[key] for g in per_seed])[0]
        entry["recovery"] = _mean_std(recoveries)[0]
        entry["recoveries"] = recoveries
        gaps.append(entry)
    out["gaps"] = gaps
    out["std"] = std
    return out


@dataclass
class ContinualSuite:
    """The runs of a continual experiment: ``runs[sequence name][seed]`` is one
    :class:`ContinualResult` (learners trained afresh for every sequence and seed)."""

    runs: dict[str, dict[int, ContinualResult]]

    @classmethod
    def of(cls, result: ContinualResult) -> ContinualSuite:
        """A suite of one run."""
        return cls({result.sequence.name: {result.seed: result}})

    @property
    def seeds(self) -> list[int]:
        return sorted({seed for per_seed in self.runs.values() for seed in per_seed})

    @property
    def first(self) -> ContinualResult:
        return next(iter(next(iter(self.runs.values())).values()))

    @property
    def records(self) -> pa.Table:
        """Every run's records, one table (sequence, then seed order)."""
        return pa.concat_tables(
            [r.records for per_seed in self.runs.values() for r in per_seed.values()]
        )

    def summary(self, sequence: str) -> dict[str, dict]:
        """Per learner, its metrics on ``sequence`` over the seeds (:func:`aggregate_seeds`)."""
        results = list(self.runs[sequence].values())
        return {
            name: aggregate_seeds([r.summary[name] for r in results]) for name in results[0].summary
        }

    def summary_json(self, **extra) -> dict:
        """The JSON-ready ``summary.json`` of the suite (see the module docstring for its
        schema; ``extra`` keys at the top level, except ``seed`` when the suite ran several:
        they are in ``"seeds"``).

        >>> from adaptloop.learners.models.majority import MajorityClass
        >>> from adaptloop.streams.tasks import split
        >>> X, y = np.eye(4, dtype=np.float32), np.arange(4)
        >>> seq = split(X, y, X, y, [[0, 1], [2, 3]])
        >>> suite = ContinualSuite({"split": {s: continual_evaluation(seq, {"m": MajorityClass(4)},
        ...                                                           seed=s) for s in (0, 1)}})
        >>> summary = suite.summary_json(seed=0)
        >>> summary["kind"], list(summary["sequences"]), summary["seeds"], "seed" in summary
        ('continual', ['split'], [0, 1], False)
        """
        if len(self.seeds) > 1:
            extra.pop("seed", None)
        sequences = {}
        for name, per_seed in self.runs.items():
            run = next(iter(per_seed.values()))
            sequences[name] = {
                "tasks": run.task_names,
                "task_boundaries": run.task_boundaries,
                "sequence": run.sequence.to_dict(),
                "learners": self.summary(name),
                "seeds": {
                    str(seed): {"task_boundaries": r.task_boundaries, "learners": r.summary}
                    for seed, r in per_seed.items()
                },
            }
        first = next(iter(sequences.values()))
        return json_safe(
            {
                "kind": "continual",
                **run_metadata(),
                "tasks": first["tasks"],
                "task_boundaries": first["task_boundaries"],
                "eval_every": self.first.eval_every,
                "windows": self.first.windows,
                "sequence": first["sequence"],
                "learners": first["learners"],
                "seeds": self.seeds,
                "sequences": sequences,
                "record_columns": CONTINUAL_RECORD_COLUMNS,
                **extra,
            }
        )

    def tables(self) -> list[Table]:
        """The summary tables (:func:`~adaptloop.results.tables.continual_tables`)."""
        return continual_tables(self.summary_json())
