"""Reading a results folder for a report: checked, and only the columns the figures need.

Two kinds of folder are understood, told apart by ``summary.json``'s ``"kind"``:

- ``"prequential"`` (:func:`adaptloop.evaluation.results.write_results`): the windowed primary
  metric per learner is read from ``records.parquet``; alarms, throughput and drift segments come
  from ``summary.json``;
- ``"continual"``: ``records.parquet`` has one row per learner, evaluation point and evaluated
  task (``learner, iteration, task, eval_task, accuracy``). A run over several sequences and
  seeds also has ``sequence`` and ``seed`` columns and a ``"sequences"`` key in
  ``summary.json`` (:mod:`adaptloop.evaluation.continual`): the report shows the first
  sequence (whose tasks and learners ``summary.json`` also holds at the top level), its curves
  averaged over the seeds at each iteration.

Curves are downsampled for plotting only (:func:`downsample_minmax` keeps every bucket's minimum
and maximum, so dips stay visible); every number in a table comes from ``summary.json`` or from an
exact record lookup. A missing or partial folder raises :class:`ReportError` with one line that
names what is missing.

>>> import tempfile
>>> load_results(tempfile.mkdtemp())
Traceback (most recent call last):
...
adaptloop.report.data.ReportError: ... is not a complete results folder: summary.json is missing
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MAX_POINTS = 4000
"""Points per plotted curve at most (plotting only; tables use the full records)."""

PREQUENTIAL_KEYS = ("stream", "metrics", "window", "learners", "drifts")
PREQUENTIAL_LEARNER_KEYS = ("n_samples", "samples_per_second", "predict_seconds", "learn_seconds")
CONTINUAL_KEYS = ("tasks", "task_boundaries", "learners")
CONTINUAL_COLUMNS = ("learner", "iteration", "task", "eval_task", "accuracy")


LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "mape"})
"""Metrics where smaller is better (kept here so reports do not import the evaluation code)."""


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better.

    >>> higher_is_better("accuracy"), higher_is_better("log_loss")
    (True, False)
    """
    return metric not in LOWER_IS_BETTER


class ReportError(ValueError):
    """A results folder that cannot be reported on; the message is one line naming why."""


@dataclass
class PrequentialResults:
    """What a prequential report shows.

    ``curves`` maps each learner to ``(positions, values)`` of the windowed primary metric,
    downsampled for plotting; ``recovered`` maps ``(learner, drift index)`` to the windowed
    metric of the first recovered window (None where the learner never recovered);
    ``n_records`` is the number of rows of ``records.parquet``; ``metric_curves`` holds the
    curves of every windowed metric (``metric_curves[metric]`` is ``curves``).
    """

    folder: Path
    summary: dict
    experiment: str | None
    metric: str
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    recovered: dict[tuple[str, int], float | None] = field(default_factory=dict)
    n_records: int = 0
    kind: str = "prequential"
    metric_curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)

    @property
    def learners(self) -> list[str]:
        """Learner names in the order of ``summary.json``."""
        return list(self.summary["learners"])


@dataclass
class ContinualResults:
    """What a continual-learning report shows.

    ``curves`` maps ``(learner, eval_task index)`` to ``(iterations, accuracies)``, downsampled
    for plotting; ``tasks`` are the task names, ``boundaries`` the iteration at which each task's
    training starts.
    """

    folder: Path
    summary: dict
    experiment: str | None
    tasks: list[str]
    boundaries: list[int]
    curves: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]
    n_records: int = 0
    kind: str = "continual"

    @property
    def learners(self) -> list[str]:
        """Learner names in the order of ``summary.json``."""
        return list(self.summary["learners"])


def downsample_minmax(
    x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of a curve, keeping each bucket's minimum and maximum.

    The points kept are in their original order, so a plotted line still shows every dip and
    peak at its place; NaN values are kept only where a whole bucket is NaN (a gap).

    >>> x = np.arange(10_000)
    >>> y = np.zeros(10_000); y[1234] = -5.0; y[8765] = 3.0
    >>> xs, ys = downsample_minmax(x, y, max_points=100)
    >>> len(xs) <= 100, float(ys.min()), float(ys.max()), 1234 in xs, bool(np.all(np.diff(xs) > 0))
    (True, -5.0, 3.0, True, True)
    """
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max(1, max_points // 2)
    size = -(-n // buckets)
    buckets = -(-n // size)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = y
    padded = padded.reshape(buckets, size)
    missing = np.isnan(padded)
    low = np.where(missing, np.inf, padded).argmin(axis=1)
    high = np.where(missing, -np.inf, padded).argmax(axis=1)
    start = np.arange(buckets) * size
    index = np.unique(np.concatenate([start + low, start + high]))
    index = index[index < n]
    return x[index], y[index]


def _incomplete(folder: Path, what: str) -> ReportError:
    return ReportError(f"{folder} is not a complete results folder: {what}")


def read_summary_checked(folder: Path) -> dict:
    """``summary.json`` of ``folder``, or :class:`ReportError` naming what is wrong.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "summary.json").write_text('{"kind": "prequential"}')
    >>> read_summary_checked(folder)["kind"]
    'prequential'
    """
    if not folder.exists():
        raise ReportError(f"results folder not found: {folder}")
    if not folder.is_dir():
        raise ReportError(f"not a results folder (not a directory): {folder}")
    path = folder / "summary.json"
    if not path.is_file():
        raise _incomplete(folder, "summary.json is missing")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _incomplete(folder, f"summary.json is not valid JSON ({error})") from None
    if not isinstance(summary, dict):
        raise _incomplete(folder, "summary.json is not a JSON object")
    return summary


def _require_keys(folder: Path, mapping: dict, keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if key not in mapping:
            raise _incomplete(folder, f"{where} has no {key!r}")


def _records_schema(folder: Path) -> pa.Schema:
    path = folder / "records.parquet"
    if not path.is_file():
        raise _incomplete(folder, "records.parquet is missing")
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _incomplete(folder, f"records.parquet cannot be read ({message})") from None


def _read_columns(folder: Path, columns: list[str], dictionary: list[str]) -> pa.Table:
    schema = _records_schema(folder)
    for column in columns:
        if column not in schema.names:
            raise _incomplete(folder, f"records.parquet has no column {column!r}")
    try:
        return pq.read_table(
            folder / "records.parquet", columns=columns, read_dictionary=dictionary
        )
    except (pa.ArrowException, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _incomplete(folder, f"records.parquet cannot be read ({message})") from None


def _groups(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Names and integer codes of a dictionary-encoded string column."""
    if column.num_chunks == 0:
        return [], np.zeros(0, dtype=np.int32)
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    column = column.unify_dictionaries()
    names = [str(v) for v in column.chunk(0).dictionary.to_pylist()]
    codes = np.concatenate(
        [chunk.indices.to_numpy(zero_copy_only=False) for chunk in column.chunks]
    )
    return names, codes


def _selectors(codes: np.ndarray) -> dict[int, slice | np.ndarray]:
    """Where each group's rows are: a slice when they are contiguous (as runs write them, no
    copy), else a boolean mask.

    >>> _selectors(np.array([0, 0, 1, 1, 1]))
    {0: slice(0, 2, None), 1: slice(2, 5, None)}
    >>> _selectors(np.array([0, 1, 0]))[0]
    array([ True, False,  True])
    """
    if len(codes) == 0:
        return {}
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(codes)]])
    runs = codes[starts]
    if len(np.unique(runs)) == len(runs):
        return {int(c): slice(int(a), int(b)) for c, a, b in zip(runs, starts, ends, strict=True)}
    return {int(c): codes == c for c in np.unique(codes)}


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy().astype(np.float64, copy=False)


def _experiment_text(folder: Path) -> str | None:
    path = folder / "experiment.toml"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def load_results(
    folder: str | Path, max_points: int = MAX_POINTS
) -> PrequentialResults | ContinualResults:
    """Read and check a results folder (prequential or continual) for a report.

    >>> import tempfile
    >>> from adaptloop.report.synthetic import write_prequential_folder
    >>> results = load_results(write_prequential_folder(tempfile.mkdtemp()))
    >>> results.kind, results.metric, results.n_records, sorted(results.curves)
    ('prequential', 'accuracy', 1800, ['adwin_reset', 'static', 'window_retrain'])
    """
    folder = Path(folder)
    summary = read_summary_checked(folder)
    kind = summary.get("kind", "prequential")
    if kind == "prequential":
        return _load_prequential(folder, summary, max_points)
    if kind == "continual":
        return _load_continual(folder, summary, max_points)
    raise ReportError(f"{folder}: unknown results kind {kind!r} in summary.json")


def _load_prequential(folder: Path, summary: dict, max_points: int) -> PrequentialResults:
    _require_keys(folder, summary, PREQUENTIAL_KEYS, "summary.json")
    if not summary["metrics"]:
        raise _incomplete(folder, "summary.json lists no metrics")
    if not summary["learners"]:
        raise _incomplete(folder, "summary.json lists no learners")
    for name, values in summary["learners"].items():
        _require_keys(folder, values, PREQUENTIAL_LEARNER_KEYS, f"summary.json learner {name!r}")
    # the plotted metric: the one drift segments use (the first per-sample one), else the first
    metric = next((s["metric"] for s in summary["drifts"] if s.get("metric")), None)
    metric = metric or summary["metrics"][0]
    schema = _records_schema(folder)
    wanted = [metric] + [s["metric"] for s in summary["drifts"] if s.get("metric")]
    wanted += [m for m in summary["metrics"] if f"{m}_window" in schema.names]
    metrics = list(dict.fromkeys(wanted))  # required first, then every windowed metric
    columns = [f"{m}_window" for m in metrics]
    table = _read_columns(folder, ["learner", "position", *columns], ["learner"])
    names, codes = _groups(table.column("learner"))
    rows = _selectors(codes)
    positions = table.column("position").to_numpy()
    window = int(summary["window"])
    full: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {m: {} for m in metrics}
    arrays = {m: _numbers(table, column) for m, column in zip(metrics, columns, strict=True)}
    for learner in summary["learners"]:
        where = rows.get(names.index(learner)) if learner in names else None
        if where is None:
            raise _incomplete(folder, f"records.parquet has no rows for learner {learner!r}")
        x = positions[where]
        order = np.argsort(x, kind="stable") if np.any(np.diff(x) < 0) else None
        if order is not None:
            x = x[order]
        for m in metrics:
            y = arrays[m][where]
            full[m][learner] = (x, y if order is None else y[order])
    curves_by_metric = {
        m: {k: downsample_minmax(x, y, max_points) for k, (x, y) in per.items()}
        for m, per in full.items()
    }
    recovered: dict[tuple[str, int], float | None] = {}
    for seg in summary["drifts"]:
        learner, recovery = seg.get("learner"), seg.get("recovery")
        per = full.get(seg.get("metric", metric), full[metric])
        if learner not in per or recovery is None:
            continue
        x, y = per[learner]
        target = int(seg["position"]) + int(recovery) + window
        i = int(np.searchsorted(x, target))
        value = float(y[i]) if i < len(x) and np.isfinite(y[i]) else None
        recovered[(learner, int(seg.get("drift", 0)))] = value
    return PrequentialResults(
        folder=folder,
        summary=summary,
        experiment=_experiment_text(folder),
        metric=metric,
        curves=curves_by_metric[metric],
        recovered=recovered,
        metric_curves=curves_by_metric,
        n_records=table.num_rows,
    )


def _task_index(values: np.ndarray, tasks: list[str]) -> np.ndarray:
    """Task columns hold names or indices; return indices into ``tasks``."""
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    lookup = {name: i for i, name in enumerate(tasks)}
    return np.array([lookup.get(str(v), -1) for v in values], dtype=np.int64)


def _load_continual(folder: Path, summary: dict, max_points: int) -> ContinualResults:
    _require_keys(folder, summary, CONTINUAL_KEYS, "summary.json")
    tasks = [str(t) for t in summary["tasks"]]
    boundaries = [int(b) for b in summary["task_boundaries"]]
    if not tasks:
        raise _incomplete(folder, "summary.json lists no tasks")
    if len(boundaries) != len(tasks):
        raise _incomplete(
            folder,
            f"summary.json has {len(tasks)} tasks but {len(boundaries)} task_boundaries",
        )
    if not summary["learners"]:
        raise _incomplete(folder, "summary.json lists no learners")
    columns = ["learner", "iteration", "eval_task", "accuracy"]
    nested = "sequence" in _records_schema(folder).names and bool(summary.get("sequences"))
    table = _read_columns(folder, columns + ["sequence"] * nested, ["learner"])
    if nested:  # several sequences: the first one's rows
        first = next(iter(summary["sequences"]))
        table = table.filter(pa.compute.equal(table.column("sequence"), first))
    names, codes = _groups(table.column("learner"))
    iterations = table.column("iteration").to_numpy()
    eval_tasks = _task_index(table.column("eval_task").to_numpy(zero_copy_only=False), tasks)
    accuracy = _numbers(table, "accuracy")
    curves: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    for learner in summary["learners"]:
        if learner not in names:
            raise _incomplete(folder, f"records.parquet has no rows for learner {learner!r}")
        mine = codes == names.index(learner)
        for t in range(len(tasks)):
            mask = mine & (eval_tasks == t)
            if not mask.any():
                continue
            x, y = iterations[mask], accuracy[mask]
            if nested:  # several seeds: the mean at each iteration (sorted by np.unique)
                x, at = np.unique(x, return_inverse=True)
                y = np.bincount(at, weights=y) / np.bincount(at)
            order = np.argsort(x, kind="stable")
            curves[(learner, t)] = downsample_minmax(x[order], y[order], max_points)
    return ContinualResults(
        folder=folder,
        summary=summary,
        experiment=_experiment_text(folder),
        tasks=tasks,
        boundaries=boundaries,
        curves=curves,
        n_records=table.num_rows,
    )
