"""The table that compares the cells of a grid (``[grid]`` in the experiment file), from the
``"grid"`` entry of ``summary.json``: one row per learner and combination of the grid's values
(the seeds aside: with ``seed`` in the grid, each number is the mean ± the standard deviation
over the seeds, population).

>>> summary = {"metrics": ["accuracy"], "grid": {"keys": ["seed", "learners.a.lr"], "runs": {
...     "a (seed=1, lr=0.1)": {"learner": "a", "values": {"seed": 1, "learners.a.lr": 0.1}},
...     "a (seed=2, lr=0.1)": {"learner": "a", "values": {"seed": 2, "learners.a.lr": 0.1}},
...     "b (seed=1)": {"learner": "b", "values": {"seed": 1}},
...     "b (seed=2)": {"learner": "b", "values": {"seed": 2}}}},
...     "learners": {"a (seed=1, lr=0.1)": {"accuracy": 0.8},
...                  "a (seed=2, lr=0.1)": {"accuracy": 0.9},
...                  "b (seed=1)": {"accuracy": 0.7}, "b (seed=2)": {"accuracy": 0.7}}}
>>> table = prequential_grid_table(summary)
>>> [c.name for c in table.columns], [[c.text for c in row] for row in table.rows]
(['learner', 'lr', 'seeds', 'accuracy'], [['a', '0.1', '2', '0.8500 ± 0.0500'], \
['b', '–', '2', '0.7000 ± 0.0000']])
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from adaptloop.results.metrics import get_metric
from adaptloop.results.tables.common import (
    MISSING,
    Cell,
    Column,
    Table,
    best_of,
    plus_minus,
)


def grid_labels(keys: Sequence[str]) -> list[str]:
    """Grid keys as a run's name and the grid table show them: without ``stream.``,
    ``tasks.``, ``learners.NAME.`` (the run's learner says whose), the full path where two
    would read the same.

    >>> grid_labels(["seed", "stream.noise", "learners.a.base.lr"])
    ['seed', 'noise', 'base.lr']
    >>> grid_labels(["learners.a.lr", "stream.lr"])
    ['learners.a.lr', 'stream.lr']
    """
    shorts = []
    for key in keys:
        parts = key.split(".")
        shorts.append(".".join(parts[2:] if parts[0] == "learners" else parts[1:] or parts))
    return [k if shorts.count(s) > 1 else s for k, s in zip(keys, shorts, strict=True)]


def grid_value(value: object) -> str:
    """A grid value as a run's name and the grid table show it (as TOML would, but a text
    unquoted; :data:`MISSING` for None: a value that does not apply).

    >>> grid_value(0.1), grid_value("sea"), grid_value([1, 2]), grid_value(None)
    ('0.1', 'sea', '[1, 2]', '–')
    """
    if value is None:
        return MISSING
    return value if isinstance(value, str) else json.dumps(value)


def _others(key: str, learner: str) -> bool:
    """Whether the grid key ``key`` is another learner's parameter than ``learner``'s."""
    parts = key.split(".")
    return parts[0] == "learners" and parts[1] != learner


def _mean_std(values: list) -> tuple[float | None, float | None]:
    if not values or any(v is None for v in values):
        return None, None
    return float(np.mean(values)), (float(np.std(values)) if len(values) > 1 else None)


def _table(
    labels: list[str],
    rows: dict[tuple, dict[str, tuple[float | None, float | None]]],
    scores: list[tuple[str, str, bool]],
    counts: dict[tuple, int] | None,
    note: str,
) -> Table:
    """``rows``: per row label (a tuple, one text per ``labels``), each score's ``(mean,
    std)``; ``scores``: key, header, bigger is better; ``counts``: seeds per row, if pooled."""
    columns = [Column.label(label) for label in labels] + [Column("seeds")] * bool(counts)
    columns += [Column(header) for _, header, _ in scores]
    best = {
        key: best_of({g: cells[key][0] for g, cells in rows.items()}, bigger)
        for key, _, bigger in scores
    }
    body: list[list[Cell | str]] = []
    for group, cells in rows.items():
        body.append(
            [
                *group,
                *([str(counts[group])] if counts else []),
                *(
                    Cell(plus_minus(*cells[key]), "best" if best[key] == group else "")
                    for key, _, _ in scores
                ),
            ]
        )
    title = "grid (mean ± std over the seeds)" if counts else "grid"
    return Table("Grid", columns, body, terminal_title=title, note=note)


def prequential_grid_table(summary: dict) -> Table:
    """The grid of a prequential run: each metric over the whole stream, per learner and grid
    cell, the seeds pooled (see the module's docstring)."""
    grid, stats = summary["grid"], summary["learners"]
    keys = [k for k in grid["keys"] if k != "seed"]
    groups: dict[tuple, list[str]] = {}
    for name, run in grid["runs"].items():
        values = tuple(grid_value(run["values"].get(k)) for k in keys)
        groups.setdefault((run["learner"], *values), []).append(name)
    scores = [(m, m, get_metric(m).bigger_is_better) for m in summary["metrics"]]
    rows = {
        group: {m: _mean_std([stats[n].get(m) for n in names]) for m, _, _ in scores}
        for group, names in groups.items()
    }
    seeded = "seed" in grid["keys"]
    return _table(
        ["learner", *grid_labels(keys)],
        rows,
        scores,
        {g: len(names) for g, names in groups.items()} if seeded else None,
        "Each metric over the whole stream, per learner and combination of the grid's values "
        + ("(the mean ± the population standard deviation over the seeds) " if seeded else "")
        + "(best in bold; – where a value is another learner's).",
    )


def continual_grid_table(summary: dict, scores: Sequence[tuple[str, str, str]]) -> Table:
    """The grid of a continual run: each learner's ``scores`` (key, header, description;
    higher is better) per grid cell (a task sequence named after the cell), the mean ± the
    standard deviation over the seeds as ``summary.json`` records them."""
    grid, sequences = summary["grid"], summary["sequences"]
    keys = list(grid["keys"])
    rows = {}
    for name, run in grid["runs"].items():
        for learner, s in sequences[name]["learners"].items():
            std = s.get("std") or {}
            values = (None if _others(k, learner) else run["values"].get(k) for k in keys)
            group = (run["sequence"], learner, *(grid_value(v) for v in values))
            rows[group] = {k: (s.get(k), std.get(k)) for k, _, _ in scores}
    seeds = len(summary.get("seeds") or [1])
    return _table(
        ["sequence", "learner", *grid_labels(keys)],
        rows,
        [(k, header, True) for k, header, _ in scores],
        None,
        "The continual scores per task sequence, learner and combination of the grid's values"
        + (f" (mean ± std over {seeds} seeds)" if seeds > 1 else "")
        + "; best in bold; – where a value is another learner's (a row repeated in another "
        "cell is shown once).",
    )
