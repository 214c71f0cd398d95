"""The summary tables of a graph run (:func:`adaptloop.evaluation.graphs.graph_prequential`),
from its ``summary.json``: the summary per learner and the numbers around each failure or
repair, in snapshots.

>>> summary = {"stream": {"name": "g", "snapshots": 10}, "metrics": ["rmse", "mae"],
...            "window": 2, "drifts": [], "learners": {
...                "a": {"rmse": 0.1, "mae": 0.05, "snapshots": 10, "rows": 40,
...                      "predict_seconds": 0.01, "learn_seconds": 0.02},
...                "b": {"rmse": 0.2, "mae": 0.04, "snapshots": 10, "rows": 40,
...                      "predict_seconds": 0.01, "learn_seconds": 0.01}}}
>>> table = graph_tables(summary)[0]
>>> table.terminal_title, [c.name for c in table.columns][:4]
('g: graph summary', ['learner', 'rmse', 'mae', 'snapshots'])
>>> [cell.text for cell in table.rows[0]][:3], table.rows[1][2].mark
(['a', '0.1000', '0.0500'], 'best')
"""

from __future__ import annotations

from adaptloop.results.metrics import get_metric
from adaptloop.results.tables.common import Cell, Column, Table, best_of, format_number


def graph_tables(summary: dict) -> list[Table]:
    """The summary per learner and, with failures, the table around each of them."""
    tables = [_summary(summary)]
    if summary.get("drifts"):
        tables.append(_failures(summary))
    return tables


def _summary(summary: dict) -> Table:
    stats, metrics = summary["learners"], list(summary["metrics"])
    columns = [
        Column.label("learner"),
        *(Column(m) for m in metrics),
        Column("snapshots"),
        Column("ms / snapshot"),
        Column("predict s", terminal=False),
        Column("learn s", terminal=False),
    ]
    best = {
        m: best_of({k: s.get(m) for k, s in stats.items()}, get_metric(m).bigger_is_better)
        for m in metrics
    }
    rows: list[list[Cell | str]] = []
    for name, s in stats.items():
        seconds = (s.get("predict_seconds") or 0.0) + (s.get("learn_seconds") or 0.0)
        per = 1000 * seconds / s["snapshots"] if s.get("snapshots") else None
        rows.append(
            [
                name,
                *(
                    Cell(format_number(s.get(m)), "best" if best[m] == name else "")
                    for m in metrics
                ),
                format_number(s.get("snapshots")),
                format_number(per, 2),
                format_number(s.get("predict_seconds"), 3),
                format_number(s.get("learn_seconds"), 3),
            ]
        )
    pooled = "RMSE and MAE pooled over all rows" if "rmse" in metrics else "means over snapshots"
    return Table(
        "Summary",
        columns,
        rows,
        terminal_title=f"{summary['stream'].get('name', '?')}: graph summary",
        note=f"Every snapshot predicted, scored, then learned ({pooled}; best in bold); time "
        "per snapshot over predict and learn.",
    )


def _failures(summary: dict) -> Table:
    first = summary["drifts"][0]
    metric, after = first.get("metric", "rmse"), first.get("after_samples")
    columns = [
        Column.label("learner"),
        Column("at snapshot"),
        Column(f"{metric} before"),
        Column(f"first {format_number(after)} after"),
        Column("drop"),
        Column("recovery (snapshots)"),
    ]
    rows: list[list[Cell | str]] = []
    for seg in summary["drifts"]:
        recovery = seg.get("recovery")
        rows.append(
            [
                seg["learner"],
                format_number(seg.get("position")),
                format_number(seg.get("before")),
                format_number(seg.get("after")),
                format_number(seg.get("drop")),
                Cell("never", "never") if recovery is None else format_number(recovery),
            ]
        )
    window = summary.get("window")
    return Table(
        "Around each failure",
        columns,
        rows,
        terminal_title=f"around each failure or repair ({metric}, in snapshots)",
        note=f"before: the {format_number(window)} snapshots before the failure or repair; after:"
        f" the first {format_number(after)} snapshots from it (the first one is the snapshot no "
        "model can foresee); drop: how much worse; recovery: snapshots until the rolling "
        f"{metric} is back within tolerance of its level before.",
    )
