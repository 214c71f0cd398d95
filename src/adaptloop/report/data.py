"""Reading a results folder for a report: checked, and only the columns the figures need.

Three kinds of folder are understood, told apart by ``summary.json``'s ``"kind"``:

- ``"prequential"`` (:class:`adaptloop.evaluation.PrequentialResult`, also federated runs): the
  windowed primary
  metric per learner is read from ``records.parquet``; alarms, throughput and drift segments come
  from ``summary.json``;
- ``"graph"`` (:func:`adaptloop.evaluation.graphs.graph_prequential`): the metrics per
  snapshot from ``records.parquet``; the graph's measures over time and its edge x time matrix
  (TEA, TET) from ``summary.json``'s ``"graph"``;
- ``"continual"``: ``records.parquet`` has one row per learner, evaluation point and evaluated
  task (``learner, iteration, task, eval_task, accuracy``). A run over several sequences and
  seeds also has ``sequence`` and ``seed`` columns and a ``"sequences"`` key in
  ``summary.json`` (:mod:`adaptloop.evaluation.continual`): every sequence is read
  (:class:`ContinualSequence`), its curves as the mean over its seeds at each iteration with
  the seeds' minimum and maximum (the band the figures shade), its numbers from
  ``summary.json`` (the mean over seeds with their ``"std"``, and each seed's own).

Curves are downsampled for plotting only (:func:`downsample_minmax` keeps every bucket's minimum
and maximum, so dips stay visible); every number in a table comes from ``summary.json`` or from an
exact record lookup. A missing or partial folder raises :class:`ReportError` with one line that
names what is missing.

>>> import tempfile
>>> load_results(tempfile.mkdtemp())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
adaptloop.results.folder.ResultsError: ... is not a complete results folder: summary.json is missing
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adaptloop.results.folder import ResultsError, incomplete, read_summary
from adaptloop.results.tables import Table, continual_tables, graph_tables, prequential_tables
from adaptloop.results.tables.continual import final_task_std, seed_runs, sequence_entries
from adaptloop.results.tables.prequential import primary_metric

MAX_POINTS = 4000
"""Points per plotted curve at most (plotting only; tables use the full records)."""

PREQUENTIAL_KEYS = ("stream", "metrics", "window", "learners", "drifts")
PREQUENTIAL_LEARNER_KEYS = ("n_samples", "samples_per_second", "predict_seconds", "learn_seconds")
CONTINUAL_KEYS = ("tasks", "task_boundaries", "learners")
CONTINUAL_COLUMNS = ("learner", "iteration", "task", "eval_task", "accuracy")
GRAPH_KEYS = ("stream", "metrics", "learners", "drifts", "graph")


ReportError = ResultsError
"""A results folder that cannot be reported on; the message is one line naming why (the
:class:`adaptloop.results.ResultsError` of the results folder)."""


@dataclass
class PrequentialResults:
    """What a prequential report shows.

    ``curves`` maps each learner to ``(positions, values)`` of the windowed primary metric,
    downsampled for plotting; ``recovered`` maps ``(learner, drift index)`` to the windowed
    metric of the first recovered window (None where the learner never recovered);
    ``n_records`` is the number of rows of ``records.parquet``; ``metric_curves`` holds the
    curves of every windowed metric (``metric_curves[metric]`` is ``curves``);
    ``communication`` (federated runs) maps each rule to ``(time, bytes sent, accuracy, accuracy
    of the nodes' own models)`` at every evaluation.
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
    communication: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)

    @property
    def learners(self) -> list[str]:
        """Learner names in the order of ``summary.json``."""
        return list(self.summary["learners"])

    def tables(self) -> list[Table]:
        """The summary tables, with the windowed metric when each learner recovered."""
        return prequential_tables(self.summary, self.recovered)


@dataclass
class ContinualSequence:
    """One task sequence of a continual run, over the seeds it was run with.

    ``learners`` is its ``summary.json`` entry per learner (the mean over seeds, with
    ``"std"`` when the run recorded it); ``runs`` maps each seed (as ``summary.json`` writes it,
    a string) to that seed's own entries per learner (empty for folders that do not record
    them). ``curves`` maps ``(learner, eval_task index)`` to ``(iterations, accuracy)``: the
    mean over the seeds evaluated at each iteration, downsampled for plotting; ``bands`` maps
    the same keys to the seeds' ``(minimum, maximum)`` at the same iterations (only with more
    than one seed). ``boundaries`` are the iterations at which each task's training starts.
    """

    name: str
    tasks: list[str]
    boundaries: list[int]
    learners: dict[str, dict]
    runs: dict[str, dict[str, dict]]
    curves: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]
    bands: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def n_seeds(self) -> int:
        """How many seeds the sequence was run with (1 for folders without per-seed entries)."""
        return max(1, len(self.runs))

    def final_task_std(self, learner: str) -> list[float | None]:
        """Standard deviation over the seeds of ``learner``'s final accuracy on each task
        (:func:`adaptloop.results.tables.final_task_std`)."""
        return final_task_std(self.runs, learner, len(self.tasks))

    def gaps(self, learner: str) -> list[dict]:
        """``learner``'s stability gaps of the first task as ``summary.json`` records them
        (:func:`adaptloop.evaluation.continual.stability_gaps`; over seeds, their means):
        the report marks and tabulates exactly these.

        >>> ContinualSequence("s", ["A", "B"], [0, 5], {"m": {"gaps": [{"drop": 0.3}]}}, {},
        ...                   {}).gaps("m")
        [{'drop': 0.3}]
        """
        return list(self.learners.get(learner, {}).get("gaps") or [])


@dataclass
class ContinualResults:
    """What a continual-learning report shows: every task sequence of the run, in the order of
    ``summary.json`` (the first one is also at its top level).

    ``tasks``, ``boundaries`` and ``curves`` are the first sequence's (see
    :class:`ContinualSequence`); ``n_records`` counts the rows of ``records.parquet`` over all
    sequences and seeds.
    """

    folder: Path
    summary: dict
    experiment: str | None
    sequences: list[ContinualSequence]
    n_records: int = 0
    kind: str = "continual"

    @property
    def learners(self) -> list[str]:
        """Learner names in the order of ``summary.json``."""
        return list(self.summary["learners"])

    @property
    def tasks(self) -> list[str]:
        """The first sequence's task names."""
        return self.sequences[0].tasks

    @property
    def boundaries(self) -> list[int]:
        """The iterations at which the first sequence's tasks start."""
        return self.sequences[0].boundaries

    @property
    def curves(self) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
        """The first sequence's curves (mean over its seeds)."""
        return self.sequences[0].curves

    def tables(self) -> list[Table]:
        """The summary tables of every sequence (those ``adaptloop run`` prints, and more)."""
        return continual_tables(self.summary)


@dataclass
class GraphResults:
    """What a graph report shows (:func:`adaptloop.evaluation.graphs.graph_prequential`).

    ``series[metric][learner]`` is ``(snapshots, values)`` of every metric per snapshot;
    ``measures`` the graph's measures over time and ``presence`` its edge x time matrix (TGX's
    TEA and TET; both ``None`` when ``summary.json`` has none), ``unit`` what one of their
    steps is; ``failures`` the snapshots of the stream's failures and repairs.
    """

    folder: Path
    summary: dict
    experiment: str | None
    metric: str
    series: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
    measures: dict[str, np.ndarray] | None
    presence: np.ndarray | None
    unit: str
    failures: list[int]
    n_records: int = 0
    kind: str = "graph"

    @property
    def learners(self) -> list[str]:
        """Learner names in the order of ``summary.json``."""
        return list(self.summary["learners"])

    def tables(self) -> list[Table]:
        """The summary tables (:func:`~adaptloop.results.tables.graph_tables`)."""
        return graph_tables(self.summary)


def _extremes_index(
    n: int, max_points: int, lows: list[np.ndarray], highs: list[np.ndarray]
) -> np.ndarray:
    """Indices (sorted) of each bucket's smallest value of every array in ``lows`` and largest of
    every array in ``highs``, with buckets sized so that at most ``max_points`` are kept."""
    buckets = max(1, max_points // (len(lows) + len(highs)))
    size = -(-n // buckets)
    buckets = -(-n // size)
    start = np.arange(buckets) * size
    keep = []
    for values, fill, pick in [(y, np.inf, np.argmin) for y in lows] + [
        (y, -np.inf, np.argmax) for y in highs
    ]:
        padded = np.full(buckets * size, np.nan)
        padded[:n] = values
        padded = padded.reshape(buckets, size)
        keep.append(start + pick(np.where(np.isnan(padded), fill, padded), axis=1))
    index = np.unique(np.concatenate(keep))
    return index[index < n]


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
    if len(x) <= max_points:
        return x, y
    index = _extremes_index(len(x), max_points, [y], [y])
    return x[index], y[index]


def downsample_band(
    x: np.ndarray, y: np.ndarray, low: np.ndarray, high: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A mean curve ``y`` with its band ``low``..``high``, at most ``max_points`` points: each
    bucket keeps the mean's minimum and maximum, the band's lowest ``low`` and highest ``high``.

    >>> x = np.arange(10_000)
    >>> y = np.zeros(10_000); low = y - 1; high = y + 1; low[42] = -9.0; high[9000] = 7.0
    >>> xs, ys, lows, highs = downsample_band(x, y, low, high, max_points=100)
    >>> len(xs) <= 100, float(lows.min()), float(highs.max()), len(ys) == len(lows) == len(xs)
    (True, -9.0, 7.0, True)
    """
    if len(x) <= max_points:
        return x, y, low, high
    index = _extremes_index(len(x), max_points, [y, low], [y, high])
    return x[index], y[index], low[index], high[index]


def _require_keys(folder: Path, mapping: dict, keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if key not in mapping:
            raise incomplete(folder, f"{where} has no {key!r}")


def _records_schema(folder: Path) -> pa.Schema:
    path = folder / "records.parquet"
    if not path.is_file():
        raise incomplete(folder, "records.parquet is missing")
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise incomplete(folder, f"records.parquet cannot be read ({message})") from None


def _read_columns(folder: Path, columns: list[str], dictionary: list[str]) -> pa.Table:
    schema = _records_schema(folder)
    for column in columns:
        if column not in schema.names:
            raise incomplete(folder, f"records.parquet has no column {column!r}")
    try:
        return pq.read_table(
            folder / "records.parquet", columns=columns, read_dictionary=dictionary
        )
    except (pa.ArrowException, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise incomplete(folder, f"records.parquet cannot be read ({message})") from None


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
) -> PrequentialResults | ContinualResults | GraphResults:
    """Read and check a results folder (prequential, continual or graph) for a report.

    >>> import tempfile
    >>> from adaptloop.report.synthetic import write_prequential_folder
    >>> results = load_results(write_prequential_folder(tempfile.mkdtemp()))
    >>> results.kind, results.metric, results.n_records, sorted(results.curves)
    ('prequential', 'accuracy', 1800, ['adwin_reset', 'static', 'window_retrain'])
    """
    folder = Path(folder)
    summary = read_summary(folder)
    kind = summary.get("kind", "prequential")
    if kind not in LOADERS:
        raise ReportError(f"{folder}: unknown results kind {kind!r} in summary.json")
    return LOADERS[kind](folder, summary, max_points)


def _load_prequential(folder: Path, summary: dict, max_points: int) -> PrequentialResults:
    _require_keys(folder, summary, PREQUENTIAL_KEYS, "summary.json")
    if not summary["metrics"]:
        raise incomplete(folder, "summary.json lists no metrics")
    if not summary["learners"]:
        raise incomplete(folder, "summary.json lists no learners")
    for name, values in summary["learners"].items():
        _require_keys(folder, values, PREQUENTIAL_LEARNER_KEYS, f"summary.json learner {name!r}")
    metric = primary_metric(summary)  # the plotted one
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
            raise incomplete(folder, f"records.parquet has no rows for learner {learner!r}")
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
        communication=_communication(folder, schema, list(summary["learners"])),
    )


COMMUNICATION_COLUMNS = ("time", "bytes_sent", "accuracy_batch", "accuracy_local")
"""A federated run's records columns behind the accuracy-against-bytes figure."""


def _communication(
    folder: Path, schema: pa.Schema, learners: list[str]
) -> dict[str, tuple[np.ndarray, ...]]:
    """Per rule of a federated run, its columns :data:`COMMUNICATION_COLUMNS` (none for other
    runs, or a federated one written before bytes were recorded)."""
    if not all(column in schema.names for column in COMMUNICATION_COLUMNS):
        return {}
    table = _read_columns(folder, ["learner", *COMMUNICATION_COLUMNS], ["learner"])
    names, codes = _groups(table.column("learner"))
    rows = _selectors(codes)
    columns = [_numbers(table, c) for c in COMMUNICATION_COLUMNS]
    return {
        name: tuple(c[rows[names.index(name)]] for c in columns)
        for name in learners
        if name in names
    }


def _task_index(values: np.ndarray, tasks: list[str]) -> np.ndarray:
    """Task columns hold names or indices; return indices into ``tasks``."""
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    lookup = {name: i for i, name in enumerate(tasks)}
    return np.array([lookup.get(str(v), -1) for v in values], dtype=np.int64)


def _sequence_entries(folder: Path, summary: dict) -> dict[str, dict]:
    """Each sequence's ``summary.json`` entry, checked."""
    if summary.get("sequences") and not isinstance(summary["sequences"], dict):
        raise incomplete(folder, "summary.json 'sequences' is not an object")
    entries = sequence_entries(summary)
    if summary.get("sequences"):
        for name, entry in entries.items():
            _require_keys(folder, entry, CONTINUAL_KEYS, f"summary.json sequence {name!r}")
    return entries


def _mean_and_band(
    x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct iteration (sorted): the mean, minimum and maximum over the seeds' values.

    >>> _mean_and_band(np.array([2, 1, 2, 1]), np.array([0.5, 0.2, 0.7, 0.4]))
    (array([1, 2]), array([0.3, 0.6]), array([0.2, 0.5]), array([0.4, 0.7]))
    """
    xs, at = np.unique(x, return_inverse=True)
    mean = np.bincount(at, weights=y) / np.bincount(at)
    low, high = np.full(len(xs), np.inf), np.full(len(xs), -np.inf)
    np.minimum.at(low, at, y)
    np.maximum.at(high, at, y)
    return xs, mean, low, high


def _load_continual(folder: Path, summary: dict, max_points: int) -> ContinualResults:
    _require_keys(folder, summary, CONTINUAL_KEYS, "summary.json")
    if not summary["learners"]:
        raise incomplete(folder, "summary.json lists no learners")
    entries = _sequence_entries(folder, summary)
    # several sequences need the records' sequence column; a single one may lack it
    nested = len(entries) > 1 or (
        "sequence" in _records_schema(folder).names and bool(summary.get("sequences"))
    )
    columns = ["learner", "iteration", "eval_task", "accuracy"] + ["sequence"] * nested
    table = _read_columns(folder, columns, ["learner", "sequence"] if nested else ["learner"])
    if nested:
        sequence_names, sequence_codes = _groups(table.column("sequence"))
        in_sequence = _selectors(sequence_codes)
    names, codes = _groups(table.column("learner"))
    iterations = table.column("iteration").to_numpy()
    eval_column = table.column("eval_task").to_numpy(zero_copy_only=False)
    accuracy = _numbers(table, "accuracy")
    sequences = []
    for sequence, entry in entries.items():
        tasks = [str(t) for t in entry["tasks"]]
        boundaries = [int(b) for b in entry["task_boundaries"]]
        where = f"summary.json sequence {sequence!r}" if nested else "summary.json"
        if not tasks:
            raise incomplete(folder, f"{where} lists no tasks")
        if len(boundaries) != len(tasks):
            raise incomplete(
                folder, f"{where} has {len(tasks)} tasks but {len(boundaries)} task_boundaries"
            )
        rows: slice | np.ndarray = slice(None)
        if nested:
            if sequence not in sequence_names:
                raise incomplete(folder, f"records.parquet has no rows for sequence {sequence!r}")
            rows = in_sequence[sequence_names.index(sequence)]
        runs = seed_runs(entry)
        its, learner_codes = iterations[rows], codes[rows]
        eval_tasks, values = _task_index(eval_column[rows], tasks), accuracy[rows]
        curves: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        bands: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        for learner in entry["learners"]:
            if learner not in names:
                raise incomplete(folder, f"records.parquet has no rows for learner {learner!r}")
            mine = learner_codes == names.index(learner)
            for t in range(len(tasks)):
                mask = mine & (eval_tasks == t)
                if not mask.any():
                    continue
                x, y, low, high = _mean_and_band(its[mask], values[mask])
                if len(runs) > 1:
                    x, y, low, high = downsample_band(x, y, low, high, max_points)
                    bands[(learner, t)] = (low, high)
                else:
                    x, y = downsample_minmax(x, y, max_points)
                curves[(learner, t)] = (x, y)
        sequences.append(
            ContinualSequence(sequence, tasks, boundaries, entry["learners"], runs, curves, bands)
        )
    return ContinualResults(
        folder=folder,
        summary=summary,
        experiment=_experiment_text(folder),
        sequences=sequences,
        n_records=table.num_rows,
    )


def _presence(folder: Path, stored: dict | None) -> np.ndarray | None:
    """The edge x time matrix from its runs ``[edge, start, stop)`` in ``summary.json``."""
    if stored is None:
        return None
    try:
        out = np.zeros(tuple(int(n) for n in stored["shape"]), dtype=bool)
        for edge, start, stop in stored["runs"]:
            out[edge, start:stop] = True
    except (KeyError, TypeError, ValueError, IndexError):
        raise incomplete(folder, "summary.json graph.presence is not shape + runs") from None
    return out


def _load_graph(folder: Path, summary: dict, max_points: int) -> GraphResults:
    _require_keys(folder, summary, GRAPH_KEYS, "summary.json")
    if not summary["learners"]:
        raise incomplete(folder, "summary.json lists no learners")
    metrics = list(summary["metrics"])
    if not metrics:
        raise incomplete(folder, "summary.json lists no metrics")
    table = _read_columns(folder, ["learner", "snapshot", *metrics], ["learner"])
    names, codes = _groups(table.column("learner"))
    rows = _selectors(codes)
    snapshots = table.column("snapshot").to_numpy()
    series: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {m: {} for m in metrics}
    for learner in summary["learners"]:
        if learner not in names:
            raise incomplete(folder, f"records.parquet has no rows for learner {learner!r}")
        where = rows[names.index(learner)]
        for m in metrics:
            x, y = snapshots[where], _numbers(table, m)[where]
            series[m][learner] = downsample_minmax(x, y, max_points)
    graph = summary["graph"] or {}
    measures = graph.get("measures")
    return GraphResults(
        folder=folder,
        summary=summary,
        experiment=_experiment_text(folder),
        metric=metrics[0],
        series=series,
        measures=None if measures is None else {k: np.asarray(v) for k, v in measures.items()},
        presence=_presence(folder, graph.get("presence")),
        unit=str(graph.get("unit") or "snapshot"),
        failures=[int(ev["at"]) for ev in summary["stream"].get("events") or []],
        n_records=table.num_rows,
    )


LOADERS = {
    "prequential": _load_prequential,
    "continual": _load_continual,
    "graph": _load_graph,
}
"""How each kind of results folder (``summary.json``'s ``"kind"``) is read."""
