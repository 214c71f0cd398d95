"""The summary tables of a run, built from its ``summary.json`` alone, so that ``adaptloop run``
(Rich, in the terminal) and the HTML report show the same numbers, formatted by the same
:func:`format_number`.

A :class:`Table` is plain data: a title, columns and rows of text :class:`Cell` s (marked
``best`` or ``never`` where that matters). Columns and tables flagged ``terminal=False`` are
left out of the terminal, where space is short; the report shows everything.

>>> summary = {"stream": {"name": "sea"}, "metrics": ["accuracy"], "window": 100, "drifts": [],
...            "learners": {"a": {"accuracy": 0.91, "accuracy_window": 0.9, "alarms": [],
...                               "samples_per_second": 12345.0, "predict_seconds": 0.5,
...                               "learn_seconds": 0.25},
...                         "b": {"accuracy": 0.85, "accuracy_window": None, "alarms": [7],
...                               "samples_per_second": 800.0, "predict_seconds": 0.1,
...                               "learn_seconds": 0.2}}}
>>> table = prequential_tables(summary)[0]
>>> table.terminal_title, [c.name for c in table.for_terminal().columns]
('sea: prequential summary', ['learner', 'accuracy', 'accuracy last 100', 'samples/s', 'alarms'])
>>> [cell.text for cell in table.rows[1]], table.rows[0][1].mark
(['b', '0.8500', '–', '800', '0.100', '0.200', '1'], 'best')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from adaptloop.results.metrics import get_metric

MISSING = "–"
"""How a missing number (None, NaN) is shown."""


# -- numbers ------------------------------------------------------------------------------------
def format_number(value: object, digits: int = 4) -> str:
    """The one way a number is written in a table: ``digits`` decimals for floats, thousands
    separators for integers, :data:`MISSING` for None and non-finite values.

    >>> format_number(0.91234), format_number(12345), format_number(None), format_number(2.5, 1)
    ('0.9123', '12,345', '–', '2.5')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def short_number(value: float, _pos: object = None) -> str:
    """Counts and rates, short: 950, 20k, 1.5M (also a matplotlib tick formatter).

    >>> short_number(20_000), short_number(1_500_000), short_number(950)
    ('20k', '1.5M', '950')
    """
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def plus_minus(value: object, std: object, digits: int = 4) -> str:
    """``value ± std`` (``value`` alone when ``std`` is None).

    >>> plus_minus(0.81234, 0.0123), plus_minus(0.5, None), plus_minus(None, 0.1)
    ('0.8123 ± 0.0123', '0.5000', '–')
    """
    if std is None or value is None:
        return format_number(value, digits)
    return f"{format_number(value, digits)} ± {format_number(float(std), digits)}"


def best_of(values: dict[str, float | None], bigger_is_better: bool) -> str | None:
    """The key of the best finite value (None if there is none).

    >>> best_of({"a": 0.2, "b": None, "c": 0.5}, True), best_of({"a": 0.2, "c": 0.5}, False)
    ('c', 'a')
    """
    known = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    if not known:
        return None
    return (max if bigger_is_better else min)(known, key=known.get)


# -- tables -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column: its header, whether it holds numbers (right-aligned) and whether the terminal
    shows it."""

    name: str
    numeric: bool = True
    terminal: bool = True


@dataclass(frozen=True)
class Cell:
    """A cell's text and its mark: ``"best"`` (best in its column), ``"never"`` (no recovery)
    or ``""``."""

    text: str
    mark: str = ""


@dataclass
class Table:
    """One summary table. ``title`` heads it in the report (``note`` explains it there);
    ``terminal_title`` is its title in the terminal, None for tables only the report shows;
    ``section`` names the task sequence it belongs to when a run has several."""

    title: str
    columns: list[Column]
    rows: list[list[Cell]]
    terminal_title: str | None = None
    note: str = ""
    section: str | None = None

    def for_terminal(self) -> Table:
        """The table without the columns the terminal leaves out."""
        keep = [i for i, column in enumerate(self.columns) if column.terminal]
        return replace(
            self,
            columns=[self.columns[i] for i in keep],
            rows=[[row[i] for i in keep] for row in self.rows],
        )


def _label(name: str) -> Column:
    return Column(name, numeric=False)


@dataclass
class _Rows:
    """Rows under construction, each a list of cells."""

    rows: list[list[Cell]] = field(default_factory=list)

    def add(self, *cells: Cell | str) -> None:
        self.rows.append([c if isinstance(c, Cell) else Cell(c) for c in cells])


# -- prequential (and federated) runs -------------------------------------------------------------
def primary_metric(summary: dict) -> str:
    """The metric a prequential run is shown by: the one its drift segments use (the first
    additive one), else the first.

    >>> primary_metric({"metrics": ["roc_auc", "accuracy"], "drifts": [{"metric": "accuracy"}]})
    'accuracy'
    """
    segment = next((s["metric"] for s in summary.get("drifts") or [] if s.get("metric")), None)
    return segment or summary["metrics"][0]


def prequential_tables(
    summary: dict, recovered: dict[tuple[str, int], float | None] | None = None
) -> list[Table]:
    """The tables of a prequential run's ``summary.json``: the summary per learner, the
    federation's rules (federated runs) and the numbers around each known drift. ``recovered``
    (the windowed metric when each learner recovered, read from the records by the report)
    adds a column to the drift table."""
    tables = [_prequential_summary(summary)]
    if summary.get("federated"):
        tables.append(_federated_table(summary))
    if summary.get("drifts"):
        tables.append(_drift_table(summary, recovered))
    return tables


def _prequential_summary(summary: dict) -> Table:
    stats = summary["learners"]
    metrics = list(summary["metrics"])
    window = int(summary["window"])
    primary = primary_metric(summary)
    columns = [
        _label("learner"),
        *(Column(m) for m in metrics),
        Column(f"{primary} last {window:,}"),
        Column("samples/s"),
        Column("predict s", terminal=False),
        Column("learn s", terminal=False),
        Column("alarms"),
    ]
    best = {
        m: best_of({k: s.get(m) for k, s in stats.items()}, get_metric(m).bigger_is_better)
        for m in metrics
    }
    rows = _Rows()
    for name, s in stats.items():
        rows.add(
            name,
            *(Cell(format_number(s.get(m)), "best" if best[m] == name else "") for m in metrics),
            format_number(s.get(f"{primary}_window")),
            short_number(s.get("samples_per_second") or 0),
            format_number(s.get("predict_seconds"), 3),
            format_number(s.get("learn_seconds"), 3),
            f"{len(s.get('alarms') or []):,}",
        )
    return Table(
        "Summary",
        columns,
        rows.rows,
        terminal_title=f"{summary['stream'].get('name', '?')}: prequential summary",
        note="Metrics over the whole stream (best in bold) and over the last "
        f"{window:,} samples; throughput over predict and learn.",
    )


def _drift_table(summary: dict, recovered: dict[tuple[str, int], float | None] | None) -> Table:
    first = summary["drifts"][0]
    metric, after = first.get("metric", primary_metric(summary)), first.get("after_samples")
    columns = [
        _label("learner"),
        Column("drift", terminal=False),
        Column("drift at"),
        Column(f"{metric} before"),
        Column(f"first {format_number(after)} after"),
        Column("drop"),
        *([Column("when recovered", terminal=False)] if recovered is not None else []),
        Column("recovery (samples)"),
    ]
    rows = _Rows()
    for seg in summary["drifts"]:
        drift = int(seg.get("drift", 0))
        recovery = seg.get("recovery")
        rows.add(
            seg["learner"],
            str(drift + 1),
            format_number(seg.get("position")),
            format_number(seg.get("before")),
            format_number(seg.get("after")),
            format_number(seg.get("drop")),
            *(
                [format_number(recovered.get((seg["learner"], drift)))]
                if recovered is not None
                else []
            ),
            Cell("never", "never") if recovery is None else format_number(recovery),
        )
    return Table(
        "Around each drift",
        columns,
        rows.rows,
        terminal_title=f"around each known drift ({metric})",
        note=f"before: the window before the drift; after: the first {format_number(after)} "
        "samples from the drift; drop: how much worse (positive = worse); recovery: samples from"
        " the drift to the start of the first full window back within tolerance of the "
        "pre-drift level.",
    )


def _federated_table(summary: dict) -> Table:
    fed = summary["federated"]
    target = fed.get("target")
    columns = [
        _label("rule"),
        Column("time to target"),
        Column("wall s to target"),
        Column("final accuracy"),
        Column("after drift"),
        Column("updates"),
        Column("server steps"),
        Column("failures"),
    ]
    rows = _Rows()
    for name, rule in fed["rules"].items():
        after = ", ".join(format_number(a, 3) for a in rule["accuracy_after_drift"])
        rows.add(
            name,
            format_number(rule["time_to_target"], 1),
            format_number(rule["wall_to_target"], 2),
            format_number(summary["learners"][name].get("accuracy_final")),
            after or MISSING,
            format_number(rule["updates"]),
            format_number(rule["server_steps"]),
            format_number(rule["failures"]),
        )
    of_target = f", target accuracy {target}" if target is not None else ""
    return Table(
        "Federation",
        columns,
        rows.rows,
        terminal_title=f"{fed['clients']} clients on the {fed['engine']} engine{of_target}",
        note=f"{fed['clients']} clients on the {fed['engine']} engine{of_target}: per "
        "aggregation rule, the simulated and wall-clock time until the global model first "
        "reached the target, its accuracy at the end and just after each drift, accepted "
        "updates, server steps and client failures.",
    )


# -- continual runs -------------------------------------------------------------------------------
SCORES = (
    ("avg_acc", "avg acc", "final average accuracy"),
    ("min_acc", "min-ACC", "min-ACC (worst dip of earlier tasks)"),
    ("wc_acc", "WC-ACC", "worst-case accuracy (WC-ACC)"),
)
"""The continual scores (higher is better): key, column header, description."""


def sequence_entries(summary: dict) -> dict[str, dict]:
    """Each task sequence's ``summary.json`` entry of a continual run; a folder without
    ``"sequences"`` is one sequence (its top level).

    >>> list(sequence_entries({"sequence": {"name": "split"}, "learners": {}}))
    ['split']
    """
    sequences = summary.get("sequences")
    if not sequences:
        name = (summary.get("sequence") or {}).get("name") or ""
        return {str(name): summary}
    return {str(name): entry for name, entry in sequences.items()}


def seed_runs(entry: dict) -> dict[str, dict[str, dict]]:
    """A sequence entry's per-seed learner entries (``{seed: {learner: {...}}}``; empty for
    folders that do not record them)."""
    seeds = entry.get("seeds")
    return {str(s): run["learners"] for s, run in seeds.items()} if isinstance(seeds, dict) else {}


def final_task_std(runs: dict[str, dict[str, dict]], learner: str, n_tasks: int) -> list:
    """Standard deviation over the seeds' ``runs`` of ``learner``'s final accuracy on each task
    (population, as ``summary.json``'s ``"std"``); None where a seed has no value.

    >>> runs = {"0": {"m": {"final_task_acc": [0.2, 0.9]}}, "1": {"m": {"final_task_acc": [0.4]}}}
    >>> [None if v is None else round(v, 6) for v in final_task_std(runs, "m", 2)]
    [0.1, None]
    """
    finals = [run[learner].get("final_task_acc") or [] for run in runs.values() if learner in run]
    out: list[float | None] = []
    for t in range(n_tasks):
        values = [f[t] if t < len(f) else None for f in finals]
        known = [float(v) for v in values if v is not None and math.isfinite(v)]
        out.append(float(np.std(known)) if known and len(known) == len(values) else None)
    return out


def _window_key(key: str) -> tuple:
    return (0, float(key), "") if str(key).replace(".", "", 1).isdigit() else (1, 0.0, str(key))


def _windows(stats: dict, key: str) -> list[str]:
    return sorted({k for s in stats.values() for k in (s.get(key) or {})}, key=_window_key)


def _recovery_cell(gap: dict, n_seeds: int) -> Cell:
    """The recovery of a gap: iterations (the mean over seeds if all recovered), ``never``, or
    how many seeds never recovered.

    >>> _recovery_cell({"recovery": 3}, 1), _recovery_cell({"recovery": 2.5}, 2)
    (Cell(text='3', mark=''), Cell(text='2.5', mark=''))
    >>> _recovery_cell({"recovery": None, "recoveries": [4, None, None]}, 3).text
    'never in 2 of 3 seeds'
    """
    back = gap.get("recovery")
    if back is not None:
        return Cell(format_number(back) if n_seeds == 1 else format_number(float(back), 1))
    missing = [r for r in gap.get("recoveries") or [] if r is None]
    if n_seeds > 1 and 0 < len(missing) < n_seeds:
        return Cell(f"never in {len(missing)} of {n_seeds} seeds", "never")
    return Cell("never", "never")


def continual_tables(summary: dict) -> list[Table]:
    """The tables of a continual run's ``summary.json``, per task sequence: the scores per
    learner (means ± standard deviation over seeds when there are several), the final accuracy
    per task, the stability gaps of the first task and, with several seeds, each seed's own
    numbers."""
    entries = sequence_entries(summary)
    several = len(entries) > 1
    tables = []
    for name, entry in entries.items():
        tables += _sequence_tables(name, entry, summary.get("eval_every"), several)
    return tables


def _sequence_tables(name: str, entry: dict, eval_every: object, several: bool) -> list[Table]:
    stats = entry["learners"]
    tasks = [str(t) for t in entry["tasks"]]
    runs = seed_runs(entry)
    n_seeds = max(1, len(runs))
    spread = n_seeds > 1
    section = name if several else None
    seeds = ", ".join(runs)
    wf_keys, wp_keys = _windows(stats, "wf"), _windows(stats, "wp")
    columns = [_label("learner")] + [Column("seeds", terminal=False)] * spread
    columns += [Column(header) for _, header, _ in SCORES]
    columns += [Column(f"WF {k}") for k in wf_keys]
    columns += [Column(f"WP {k}", terminal=False) for k in wp_keys]
    columns += [Column("max gap"), Column("train s"), Column("eval s")]
    best = {k: best_of({n: s.get(k) for n, s in stats.items()}, True) for k, _, _ in SCORES}
    rows = _Rows()
    for learner, s in stats.items():
        std = (s.get("std") or {}) if spread else {}
        wf, wp = s.get("wf") or {}, s.get("wp") or {}
        rows.add(
            learner,
            *[str(n_seeds)] * spread,
            *(
                Cell(plus_minus(s.get(k), std.get(k)), "best" if best[k] == learner else "")
                for k, _, _ in SCORES
            ),
            *(plus_minus(wf.get(k), (std.get("wf") or {}).get(k)) for k in wf_keys),
            *(plus_minus(wp.get(k), (std.get("wp") or {}).get(k)) for k in wp_keys),
            plus_minus(s.get("max_gap"), std.get("max_gap")),
            format_number(s.get("train_seconds"), 2),
            format_number(s.get("eval_seconds"), 2),
        )
    over = (
        f" With {n_seeds} seeds ({seeds}), each cell is the mean ± the standard deviation over "
        "the seeds (population, as summary.json records it; seconds: the mean per run); each "
        "seed's own numbers are in the last table."
        if spread
        else ""
    )
    prefix = f"{name}: " if name else ""
    every = f"every {eval_every} it." if eval_every is not None else "per iteration"
    tables = [
        Table(
            "Summary",
            columns,
            rows.rows,
            terminal_title=f"{prefix}continual evaluation ({every}"
            + (f", {n_seeds} seeds: mean ± std)" if spread else ")"),
            note="avg acc: final accuracy averaged over tasks; min-ACC: average over earlier "
            "tasks of their lowest accuracy after being learned; WC-ACC: worst-case accuracy; "
            "WF / WP: windowed forgetting / plasticity over the given number of iterations; "
            f"max gap: the largest stability gap of {tasks[0]} (best in bold).{over}",
            section=section,
        ),
        _final_table(stats, tasks, runs, section),
    ]
    gaps = _gap_table(stats, tasks, n_seeds, section)
    if gaps.rows:
        tables.append(gaps)
    if spread:
        tables.append(_per_seed_table(stats, tasks, runs, wf_keys, section))
    return tables


def _finals(s: dict, n_tasks: int) -> list:
    finals = list(s.get("final_task_acc") or [])[:n_tasks]
    return finals + [None] * (n_tasks - len(finals))


def _final_table(stats: dict, tasks: list[str], runs: dict, section: str | None) -> Table:
    rows = _Rows()
    for learner, s in stats.items():
        stds = final_task_std(runs, learner, len(tasks)) if len(runs) > 1 else [None] * len(tasks)
        finals = _finals(s, len(tasks))
        rows.add(learner, *(plus_minus(v, d) for v, d in zip(finals, stds, strict=True)))
    return Table(
        "Final accuracy per task",
        [_label("learner"), *(Column(t) for t in tasks)],
        rows.rows,
        section=section,
    )


def _gap_table(stats: dict, tasks: list[str], n_seeds: int, section: str | None) -> Table:
    rows = _Rows()
    for learner, s in stats.items():
        for gap in s.get("gaps") or []:
            new = int(gap.get("task", 0))
            rows.add(
                learner,
                tasks[new] if 0 <= new < len(tasks) else str(new),
                format_number(gap.get("switch")),
                format_number(gap.get("before")),
                format_number(gap.get("minimum")),
                format_number(gap.get("drop")),
                _recovery_cell(gap, n_seeds),
            )
    header = ["new task", "at iteration", "before", "lowest", "gap", "recovery"]
    return Table(
        f"Stability gap of {tasks[0]}",
        [_label("learner"), _label(header[0]), *(Column(h) for h in header[1:])],
        rows.rows,
        note="Accuracy on the first task just before each new task starts, its lowest point "
        "shortly after, and the iterations until it is back to 95 % of the level before"
        + (f" (means over the {n_seeds} seeds)." if n_seeds > 1 else "."),
        section=section,
    )


def _per_seed_table(
    stats: dict, tasks: list[str], runs: dict, wf_keys: list[str], section: str | None
) -> Table:
    header = ["seed", *(h for _, h, _ in SCORES), *(f"WF {k}" for k in wf_keys)]
    header += [f"final {t}" for t in tasks] + ["max gap"]
    rows = _Rows()
    for learner in stats:
        for seed, run in runs.items():
            s = run.get(learner)
            if s is None:
                continue
            rows.add(
                learner,
                seed,
                *(format_number(s.get(k)) for k, _, _ in SCORES),
                *(format_number((s.get("wf") or {}).get(k)) for k in wf_keys),
                *(format_number(v) for v in _finals(s, len(tasks))),
                format_number(s.get("max_gap")),
            )
    return Table(
        "Per seed",
        [_label("learner"), *(Column(h) for h in header)],
        rows.rows,
        note="Each seed's run on its own (max gap: the largest stability gap of the first task).",
        section=section,
    )
