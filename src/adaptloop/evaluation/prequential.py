"""Test-then-train evaluation: every batch is first predicted by every learner, then learned.

All learners see the same batches in one pass over the stream. Records are kept per batch (or
every ``record_every`` samples) and per learner; see
:data:`~adaptloop.results.schema.PREQUENTIAL_RECORD_COLUMNS`.

>>> import numpy as np
>>> from adaptloop.streams import ArrayStream
>>> from adaptloop.learners.base import BaseClassifier
>>> class Majority(BaseClassifier):
...     def __init__(self):
...         super().__init__(task="binary")
...         self.counts = np.ones(2)
...     def _learn(self, X, y):
...         self.counts += np.bincount(y, minlength=2)
...     def _predict_proba(self, X):
...         return np.tile(self.counts / self.counts.sum(), (len(X), 1))
...     def _get_state(self):
...         return self.counts.copy()
...     def _set_state(self, state):
...         self.counts = state
>>> rng = np.random.default_rng(0)
>>> stream = ArrayStream(rng.normal(size=(500, 2)), (rng.random(500) < 0.8).astype(np.int64))
>>> result = prequential(stream, {"majority": Majority()}, batch_size=50, window=100)
>>> result.summary["majority"]["n_samples"], round(result.summary["majority"]["accuracy"], 2)
(500, 0.74)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from adaptloop.evaluation.delay import LabelSchedule, Learned
from adaptloop.evaluation.drift import drift_segments
from adaptloop.evaluation.metrics import MetricTracker
from adaptloop.evaluation.slots import slot_bounds, slot_metrics, slot_of
from adaptloop.learners.base import (
    DriftReporting,
    HasTask,
    Learner,
    Sequential,
    TaskAware,
    is_classifier,
)
from adaptloop.results import (
    PREQUENTIAL_RECORD_COLUMNS,
    Table,
    check_metrics,
    default_metrics,
    get_metric,
    json_safe,
    prequential_tables,
    run_metadata,
)
from adaptloop.streams.base import Stream, StreamInfo, check_batch_size
from adaptloop.validation import Count, Delay


@dataclass
class PrequentialResult:
    """What a prequential run measured.

    ``records`` is a pyarrow Table (columns in
    :data:`~adaptloop.results.schema.PREQUENTIAL_RECORD_COLUMNS`), ``summary`` maps each
    learner to its final metrics and throughput, ``drifts`` lists drift-segmented metrics
    (one dict per learner and known drift, see :mod:`adaptloop.evaluation.drift`). It is a
    :class:`~adaptloop.results.Result`.
    """

    info: StreamInfo
    metrics: list[str]
    window: int
    records: pa.Table
    summary: dict[str, dict]
    drifts: list[dict] = field(default_factory=list)
    stream_summary: dict = field(default_factory=dict)
    slots: int | None = None
    label_delay: dict = field(default_factory=lambda: {"delay": 0, "timestamp": None})

    def to_pandas(self):
        """The records as a pandas DataFrame."""
        return self.records.to_pandas()

    def summary_json(self, **extra) -> dict:
        """The JSON-ready ``summary.json``: run metadata, the stream's metadata (including
        known drifts), metrics and window, the label delay setting, per-learner final metrics,
        semantics (``exact`` or ``batch``), effective label delay and throughput,
        drift-segmented metrics (``extra`` keys are added at the top level)."""
        return json_safe(
            {
                "kind": "prequential",
                **run_metadata(),
                "stream": {**self.info.to_dict(), **self.stream_summary},
                "metrics": self.metrics,
                "window": self.window,
                "slots": self.slots,
                "label_delay": self.label_delay,
                "learners": self.summary,
                "drifts": self.drifts,
                "record_columns": PREQUENTIAL_RECORD_COLUMNS,
                **extra,
            }
        )

    def tables(self) -> list[Table]:
        """The summary tables (:func:`~adaptloop.results.tables.prequential_tables`)."""
        return prequential_tables(self.summary_json())


class _LearnerRun:
    """Per-learner state of one prequential pass: metrics, timings, alarms, record columns.

    ``exact``: the learner is :class:`~adaptloop.learners.base.Sequential` and runs exact
    test-then-train inside each batch; else it predicts a whole batch, then learns it (a
    task-aware learner on a stream with known drifts too: it is told the boundaries between
    learn calls)."""

    def __init__(
        self, name: str, learner: Learner, tracker: MetricTracker, boundaries: bool
    ) -> None:
        self.name = name
        self.learner = learner
        self.tracker = tracker
        self.use_proba = tracker.needs_proba
        self.classifier = is_classifier(learner)
        # asked once: a protocol check costs microseconds, and records can come every batch
        self.task_aware = boundaries and isinstance(learner, TaskAware)
        self.exact = isinstance(learner, Sequential) and not self.task_aware
        self.drift_reporting = isinstance(learner, DriftReporting)
        self.predict_seconds = 0.0
        self.learn_seconds = 0.0
        self._record_predict = 0.0
        self._record_learn = 0.0
        self._alarms_seen = len(self._alarms())
        self.alarms: list[int] = []
        self.columns: dict[str, list] = {}
        self._delay_sum = self._record_delay_sum = 0.0
        self._delay_count = self._record_delay_count = 0

    def step(
        self,
        X: np.ndarray,
        y: np.ndarray,
        learned: Learned,
        position: int,
        tasks: Sequence[tuple[int, int]],
    ) -> None:
        """Predict the batch and learn the labels ``learned`` (at ``learned.learn_at`` between
        the predictions, or after all of them); ``position``: samples before the batch;
        ``tasks``: ``(offset in learned, task)`` where a task begins (known drifts), told to a
        task-aware learner between its parts."""
        t0 = time.perf_counter()
        if self.exact:
            out = self.learner.test_then_train(  # type: ignore[attr-defined]
                X, learned.X, learned.y, learned.learn_at, self.use_proba
            )
            proba, pred = (out, out.argmax(axis=1)) if self.use_proba else (None, out)
            t1 = t0  # one interleaved call: counted as learning
            at = None  # each label after its learn_at predictions
        else:
            if self.use_proba:
                proba = self.learner.predict_proba(X)
                pred = proba.argmax(axis=1)
            else:
                proba = None
                pred = self.learner.predict(X)
            t1 = time.perf_counter()
            self._learn(learned, tasks)
            at = len(X)
        t2 = time.perf_counter()
        self._record_predict += t1 - t0
        self._record_learn += t2 - t1
        self.tracker.update(y, pred, proba)
        if len(learned):  # later samples predicted before each label was learned
            self._record_delay_sum += learned.lag(position, at)
            self._record_delay_count += len(learned)

    def _learn(self, learned: Learned, tasks: Sequence[tuple[int, int]]) -> None:
        start = 0
        if tasks and self.task_aware:
            for offset, task in tasks:
                if offset > start:
                    self.learner.learn(learned.X[start:offset], learned.y[start:offset])
                self.learner.begin_task(task)  # type: ignore[attr-defined]
                start = offset
        if start < len(learned):
            self.learner.learn(learned.X[start:], learned.y[start:])

    def finish(self, learned: Learned | None) -> None:
        """Learn the labels still pending at the end of the stream (no prediction follows)."""
        if learned is None:
            return
        t0 = time.perf_counter()
        if self.exact:
            self.learner.test_then_train(  # type: ignore[attr-defined]
                learned.X[:0], learned.X, learned.y, learned.learn_at, self.use_proba
            )
        else:
            self.learner.learn(learned.X, learned.y)
        self.learn_seconds += time.perf_counter() - t0

    def _alarms(self) -> list[int]:
        return list(self.learner.alarms) if self.drift_reporting else []  # type: ignore[attr-defined]

    def record(self, position: int, n: int) -> None:
        alarms = self._alarms()
        new_alarms = [int(a) for a in alarms[self._alarms_seen :]]
        self._alarms_seen = len(alarms)
        self.alarms.extend(new_alarms)
        row = {
            "record": len(self.columns.get("position", ())),
            "position": position,
            "n": n,
            **self.tracker.report(),
            "predict_seconds": self._record_predict,
            "learn_seconds": self._record_learn,
            "label_delay": _mean(self._record_delay_sum, self._record_delay_count),
            "alarms": new_alarms,
        }
        self.predict_seconds += self._record_predict
        self.learn_seconds += self._record_learn
        self._record_predict = self._record_learn = 0.0
        self._delay_sum += self._record_delay_sum
        self._delay_count += self._record_delay_count
        self._record_delay_sum, self._record_delay_count = 0.0, 0
        for key, value in row.items():
            self.columns.setdefault(key, []).append(value)

    def summary(self) -> dict:
        last = {
            k: v[-1]
            for k, v in self.columns.items()
            if k.endswith("_window") or k in self.tracker.metrics
        }
        busy = self.predict_seconds + self.learn_seconds
        n = self.tracker.count
        return {
            "n_samples": n,
            **last,
            "predict_seconds": self.predict_seconds,
            "learn_seconds": self.learn_seconds,
            "samples_per_second": n / busy if busy > 0 else float("inf"),
            "semantics": "exact" if self.exact else "batch",
            "label_delay": _mean(self._delay_sum, self._delay_count),
            "alarms": self.alarms,
        }


def _mean(total: float, count: int) -> float:
    return total / count if count else float("nan")


def _check_learner_fits(name: str, learner: object, info: StreamInfo) -> None:
    if not isinstance(learner, Learner):
        raise ValueError(
            f"learner {name!r} is not a Learner (needs predict, learn, state_dict, ...)"
        )
    task, n_classes = (
        (learner.task, learner.n_classes) if isinstance(learner, HasTask) else (None, None)
    )
    if info.task == "regression" and is_classifier(learner):
        raise ValueError(f"learner {name!r} is a classifier but stream {info.name!r} is regression")
    if info.task != "regression" and task == "regression":
        raise ValueError(f"learner {name!r} is a regressor but stream {info.name!r} is {info.task}")
    if info.n_classes is not None and n_classes is not None and n_classes != info.n_classes:
        raise ValueError(
            f"learner {name!r} has n_classes={n_classes} but stream {info.name!r} has "
            f"{info.n_classes} classes {list(info.classes)}"
        )


def prequential(
    stream: Stream,
    learners: Mapping[str, Learner],
    *,
    batch_size: Count = 256,
    delay: Delay = 0,
    timestamp: str | None = None,
    metrics: list[str] | None = None,
    window: int = 1000,
    record_every: int | None = None,
    max_samples: Count | None = None,
    after: int = 1000,
    tolerance: float = 0.02,
    on_batch: Callable[[int], None] | None = None,
    slots: int | None = None,
) -> PrequentialResult:
    """Predict, score, then learn each batch with every learner; return records and summaries.

    Args:
        stream: the data; its ``info`` gives the task, classes and known drifts.
        learners: name -> learner; each sees every batch in the same order.
        batch_size: samples per batch: speed only for
            :class:`~adaptloop.learners.base.Sequential` learners (exact test-then-train inside
            each batch, the numbers of batch 1); the others predict a whole batch, then learn
            it (their labels arrive up to ``batch_size - 1`` samples late).
        delay: label delay (:mod:`adaptloop.evaluation.delay`, River's semantics): a number
            of samples (time units of ``timestamp`` when given), or the name of a feature
            holding each sample's delay. 0: each label is learned before the next prediction.
        timestamp: the name of a feature holding each sample's time (non-decreasing), which
            ``delay`` is measured in; default: the sample's position.
        metrics: metric names (default: all metrics of the task, see ``default_metrics``).
        window: size of the sliding window of the ``*_window`` metrics (samples).
        record_every: write a record every this many samples (default: every batch).
        max_samples: stop after this many samples.
        after, tolerance: drift-segmented metric parameters (``evaluation.drift``).
        on_batch: called with the number of samples seen after each batch (progress bars).
        slots: cut the run into this many chronological slots and report every per-sample
            metric per slot (:mod:`adaptloop.evaluation.slots`): a ``slot`` column in the
            records, ``slots`` per learner in the summary.

    Task boundaries: a :class:`~adaptloop.learners.base.TaskAware` learner is told
    ``begin_task(k)`` at the ``k``-th known drift of the stream (``info.drifts``, at its
    ``position``: the centre of a gradual drift), between learning the samples before it and
    those from it on (the batch is predicted whole first, as for every learner). Nobody holds
    the finished task's data on a stream, so no ``end_task`` is called: such a learner ends
    the task with what it kept of it (see :mod:`adaptloop.learners.continual.learner`). With a
    label delay the boundary falls before the first learned sample that arrived at or after it.

    The summary says per learner which ``semantics`` it ran with (``exact`` or ``batch``) and
    its effective ``label_delay``: the mean number of later samples predicted before each label
    was learned (0 for exact test-then-train without delay; about ``batch_size / 2`` for batch
    semantics); the records give it per record.
    """
    batch_size = check_batch_size(batch_size)
    info = stream.info
    if not learners:
        raise ValueError("no learners to evaluate")
    for name, learner in learners.items():
        _check_learner_fits(name, learner, info)
    metrics = check_metrics(metrics, info.task) if metrics else default_metrics(info.task)
    if record_every is not None and record_every < 1:
        raise ValueError(f"record_every must be >= 1 sample, got {record_every}")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    if slots is not None and slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    schedule = LabelSchedule(delay, timestamp, info)
    drifts = sorted(d.position for d in info.drifts)
    runs = [
        _LearnerRun(
            name, learner, MetricTracker(metrics, info.task, info.n_classes, window), bool(drifts)
        )
        for name, learner in learners.items()
    ]
    position = 0
    last_record = 0
    task_aware = any(run.task_aware for run in runs)  # else no boundary to tell
    told = 0  # drifts told so far
    for X, y in stream.iter_batches(batch_size):
        if max_samples is not None and position + X.shape[0] > max_samples:
            X, y = X[: max_samples - position], y[: max_samples - position]
            if X.shape[0] == 0:
                break
        learned = schedule.arrive(X, y)
        tasks: list[tuple[int, int]] = []
        while task_aware and told < len(drifts):  # boundaries crossed by the learned samples
            crossing = np.flatnonzero(learned.arrival >= drifts[told])
            if not len(crossing):
                break
            told += 1
            tasks.append((int(crossing[0]), told))
        for run in runs:
            run.step(X, y, learned, position, tasks)
        position += X.shape[0]
        if record_every is None or position - last_record >= record_every:
            for run in runs:
                run.record(position, position - last_record)
            last_record = position
        if on_batch is not None:
            on_batch(position)
        if max_samples is not None and position >= max_samples:
            break
    if position > last_record:
        for run in runs:
            run.record(position, position - last_record)
    pending = schedule.flush()
    for run in runs:
        run.finish(pending)
    result = _result(info, metrics, window, runs, after, tolerance, slots, schedule.describe())
    result.stream_summary = stream.summary()
    return result


def _result(info, metrics, window, runs, after, tolerance, slots, label_delay) -> PrequentialResult:
    tables = []
    for run in runs:
        columns = {"learner": [run.name] * len(run.columns["position"]), **run.columns}
        if slots is not None:
            positions = np.asarray(run.columns["position"])
            columns["slot"] = slot_of(positions, slot_bounds(int(positions[-1]), slots))
        columns["alarms"] = pa.array(columns["alarms"], type=pa.list_(pa.int64()))
        tables.append(pa.table(columns))
    records = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    segment_metric = next((m for m in metrics if get_metric(m).additive), None)
    drifts = []
    if info.drifts and segment_metric is not None:
        for run in runs:
            for seg in drift_segments(
                {k: np.asarray(v) for k, v in run.columns.items() if k != "alarms"},
                info.drifts,
                segment_metric,
                window,
                after,
                tolerance,
            ):
                drifts.append({"learner": run.name, **seg})
    summary = {run.name: run.summary() for run in runs}
    if slots is not None:
        for run in runs:
            summary[run.name]["slots"] = slot_metrics(run.columns, metrics, slots)
    return PrequentialResult(
        info=info,
        metrics=metrics,
        window=window,
        records=records,
        summary=summary,
        drifts=drifts,
        slots=slots,
        label_delay=label_delay,
    )
