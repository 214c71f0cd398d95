"""The summary tables of a prequential (or federated) run, from its ``summary.json``: the
summary per learner, the federation's rules (federated runs) and the numbers around each drift.

>>> summary = {"stream": {"name": "sea"}, "metrics": ["accuracy"], "window": 100, "drifts": [],
...            "learners": {"a": {"accuracy": 0.91, "accuracy_window": 0.9, "alarms": [],
...                               "samples_per_second": 12345.0, "predict_seconds": 0.5,
...                               "learn_seconds": 0.25},
...                         "b": {"accuracy": 0.85, "accuracy_window": None, "alarms": [7],
...                               "samples_per_second": 800.0, "predict_seconds": 0.1,
...                               "learn_seconds": 0.2}}}
>>> table = prequential_tables(summary)[0]
>>> table.terminal_title, [c.name for c in table.for_terminal().columns][:5]
('sea: prequential summary', ['learner', 'accuracy', 'accuracy last 100', 'samples/s', 'alarms'])
>>> [c.name for c in table.for_terminal().columns][5:]  # how each learner ran
['semantics', 'label delay']
>>> [cell.text for cell in table.rows[1]], table.rows[0][1].mark
(['b', '0.8500', '–', '800', '0.100', '0.200', '1', '–', '–'], 'best')
"""

from __future__ import annotations

from adaptloop.results.metrics import get_metric
from adaptloop.results.tables.common import (
    MISSING,
    Cell,
    Column,
    Table,
    best_of,
    format_number,
    short_number,
)
from adaptloop.results.tables.grid import prequential_grid_table


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
    if summary.get("grid"):
        tables.append(prequential_grid_table(summary))
    if summary.get("federated"):
        tables.append(_federated_table(summary))
    if summary.get("drifts"):
        tables.append(_drift_table(summary, recovered))
    if any(s.get("slots") for s in summary["learners"].values()):
        tables.append(_slot_table(summary))
    return tables


def _slot_table(summary: dict) -> Table:
    """The primary metric of every learner in each chronological slot (best in bold)."""
    stats = summary["learners"]
    metric = primary_metric(summary)
    if not get_metric(metric).additive:  # slots hold per-sample metrics only
        metric = next(m for m in summary["metrics"] if get_metric(m).additive)
    slots = next(s["slots"] for s in stats.values() if s.get("slots"))
    columns = [
        Column.label("slot"),
        Column("samples"),
        *(Column(name) for name in stats),
    ]
    rows: list[list[Cell | str]] = []
    for k, slot in enumerate(slots):
        values = {
            name: (s.get("slots") or [{}] * len(slots))[k].get(metric) for name, s in stats.items()
        }
        best = best_of(values, get_metric(metric).bigger_is_better)
        rows.append(
            [
                f"{k + 1}",
                f"{slot['start']:,}–{slot['end']:,}",
                *(
                    Cell(format_number(v), "best" if best == name else "")
                    for name, v in values.items()
                ),
            ]
        )
    return Table(
        f"{metric} per slot",
        columns,
        rows,
        terminal_title=f"{summary['stream'].get('name', '?')}: {metric} per slot",
        note=f"{metric} over each of {len(slots)} chronological slots of the stream (best in "
        "bold); a record counts in the slot of its last sample.",
    )


def _prequential_summary(summary: dict) -> Table:
    stats = summary["learners"]
    metrics = list(summary["metrics"])
    window = int(summary["window"])
    primary = primary_metric(summary)
    columns = [
        Column.label("learner"),
        *(Column(m) for m in metrics),
        Column(f"{primary} last {window:,}"),
        Column("samples/s"),
        Column("predict s", terminal=False),
        Column("learn s", terminal=False),
        Column("alarms"),
        Column.label("semantics"),
        Column("label delay"),
    ]
    best = {
        m: best_of({k: s.get(m) for k, s in stats.items()}, get_metric(m).bigger_is_better)
        for m in metrics
    }
    rows: list[list[Cell | str]] = []
    for name, s in stats.items():
        rows.append(
            [
                name,
                *(
                    Cell(format_number(s.get(m)), "best" if best[m] == name else "")
                    for m in metrics
                ),
                format_number(s.get(f"{primary}_window")),
                short_number(s.get("samples_per_second") or 0),
                format_number(s.get("predict_seconds"), 3),
                format_number(s.get("learn_seconds"), 3),
                f"{len(s.get('alarms') or []):,}",
                format_number(s.get("semantics")),
                format_number(s.get("label_delay"), 1),
            ]
        )
    return Table(
        "Summary",
        columns,
        rows,
        terminal_title=f"{summary['stream'].get('name', '?')}: prequential summary",
        note="Metrics over the whole stream (best in bold) and over the last "
        f"{window:,} samples; throughput over predict and learn. Semantics: exact "
        "(test-then-train sample by sample inside each batch) or batch (a batch predicted, then "
        "learned); label delay: mean number of later samples predicted before a label was "
        "learned.",
    )


def _drift_table(summary: dict, recovered: dict[tuple[str, int], float | None] | None) -> Table:
    first = summary["drifts"][0]
    metric, after = first.get("metric", primary_metric(summary)), first.get("after_samples")
    columns = [
        Column.label("learner"),
        Column("drift", terminal=False),
        Column("drift at"),
        Column(f"{metric} before"),
        Column(f"first {format_number(after)} after"),
        Column("drop"),
        *([Column("when recovered", terminal=False)] if recovered is not None else []),
        Column("recovery (samples)"),
    ]
    rows: list[list[Cell | str]] = []
    for seg in summary["drifts"]:
        drift = int(seg.get("drift", 0))
        recovery = seg.get("recovery")
        rows.append(
            [
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
            ]
        )
    return Table(
        "Around each drift",
        columns,
        rows,
        terminal_title=f"around each known drift ({metric})",
        note=f"before: the window before the drift; after: the first {format_number(after)} "
        "samples from the drift; drop: how much worse (positive = worse); recovery: samples from"
        " the drift to the start of the first full window back within tolerance of the "
        "pre-drift level.",
    )


def _down_weighted(rule: dict) -> str:
    """Updates a robust block down-weighted: from Byzantine clients / from honest ones."""
    bad = {str(c) for c in rule.get("byzantine", [])}
    down = rule.get("down_weighted_by_client", {})
    byzantine = sum(v for c, v in down.items() if c in bad)
    return f"{byzantine} / {sum(down.values()) - byzantine}"


def _federated_table(summary: dict) -> Table:
    fed = summary["federated"]
    target = fed.get("target")
    columns = [
        Column.label("rule"),
        Column("time to target"),
        Column("wall s to target"),
        Column("final accuracy"),
        Column("after drift"),
        Column("updates"),
        Column("server steps"),
        Column("failures"),
    ]
    attacked = bool(fed.get("attack"))
    if attacked:
        columns.append(Column("down-weighted Byzantine / honest"))
    counted = all("bytes_sent" in rule for rule in fed["rules"].values())  # older runs: no
    if counted:
        columns += [Column("MB to target"), Column("MB sent")]
    rows: list[list[Cell | str]] = []
    for name, rule in fed["rules"].items():
        after = ", ".join(format_number(a, 3) for a in rule["accuracy_after_drift"])
        rows.append(
            [
                name,
                format_number(rule["time_to_target"], 1),
                format_number(rule["wall_to_target"], 2),
                format_number(summary["learners"][name].get("accuracy_final")),
                after or MISSING,
                format_number(rule["updates"]),
                format_number(rule["server_steps"]),
                format_number(rule["failures"]),
            ]
        )
        if attacked:
            rows[-1].append(_down_weighted(rule))
        if counted:
            to_target = rule["bytes_to_target"]
            rows[-1] += [
                format_number(None if to_target is None else to_target / 1e6, 3),
                format_number(rule["bytes_sent"] / 1e6, 3),
            ]
    of_target = f", target accuracy {target}" if target is not None else ""
    return Table(
        "Federation",
        columns,
        rows,
        terminal_title=f"{fed['clients']} clients on the {fed['engine']} engine{of_target}",
        note=f"{fed['clients']} clients on the {fed['engine']} engine{of_target}: per "
        "aggregation rule, the simulated and wall-clock time until the global model first "
        "reached the target, its accuracy at the end and just after each drift, accepted "
        "updates, server steps and client failures"
        + (
            "; under attack, the updates a robust block down-weighted, from Byzantine and from "
            "honest clients"
            if attacked
            else ""
        )
        + (
            "; megabytes sent until the target and in all (models to and from the server, or "
            "between the nodes of a decentralised rule)."
            if counted
            else "."
        ),
    )
