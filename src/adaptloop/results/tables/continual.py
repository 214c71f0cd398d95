"""The summary tables of a continual run, from its ``summary.json``: per task sequence, the
scores per learner (means ± standard deviation over seeds when there are several), the final
accuracy per task, the stability gaps of the first task and each seed's own numbers.

>>> summary = {"tasks": ["A", "B"], "eval_every": 5, "learners": {"m": {"avg_acc": 0.5,
...            "gaps": [{"switch": 4, "task": 1, "before": 0.9, "minimum": 0.2, "drop": 0.7,
...            "recovery": None}]}}}
>>> [t.title for t in continual_tables(summary)]
['Summary', 'Final accuracy per task', 'Stability gap of A']
>>> [c.text for c in continual_tables(summary)[2].rows[0]][-2:]
['0.7000', 'never']
"""

from __future__ import annotations

import math

import numpy as np

from adaptloop.results.tables.common import (
    Cell,
    Column,
    Table,
    best_of,
    format_number,
    plus_minus,
)
from adaptloop.results.tables.grid import continual_grid_table

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
    if summary.get("grid"):
        tables.insert(0, continual_grid_table(summary, SCORES))
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
    columns = [Column.label("learner")] + [Column("seeds", terminal=False)] * spread
    columns += [Column(header) for _, header, _ in SCORES]
    columns += [Column(f"WF {k}") for k in wf_keys]
    columns += [Column(f"WP {k}", terminal=False) for k in wp_keys]
    columns += [Column("max gap"), Column("kept samples"), Column("train s"), Column("eval s")]
    best = {k: best_of({n: s.get(k) for n, s in stats.items()}, True) for k, _, _ in SCORES}
    rows: list[list[Cell | str]] = []
    for learner, s in stats.items():
        std = (s.get("std") or {}) if spread else {}
        wf, wp = s.get("wf") or {}, s.get("wp") or {}
        rows.append(
            [
                learner,
                *[str(n_seeds)] * spread,
                *(
                    Cell(plus_minus(s.get(k), std.get(k)), "best" if best[k] == learner else "")
                    for k, _, _ in SCORES
                ),
                *(plus_minus(wf.get(k), (std.get("wf") or {}).get(k)) for k in wf_keys),
                *(plus_minus(wp.get(k), (std.get("wp") or {}).get(k)) for k in wp_keys),
                plus_minus(s.get("max_gap"), std.get("max_gap")),
                format_number(s.get("stored_samples"), 0),
                format_number(s.get("train_seconds"), 2),
                format_number(s.get("eval_seconds"), 2),
            ]
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
            rows,
            terminal_title=f"{prefix}continual evaluation ({every}"
            + (f", {n_seeds} seeds: mean ± std)" if spread else ")"),
            note="avg acc: final accuracy averaged over tasks; min-ACC: average over earlier "
            "tasks of their lowest accuracy after being learned; WC-ACC: worst-case accuracy; "
            "WF / WP: windowed forgetting / plasticity over the given number of iterations; "
            f"max gap: the largest stability gap of {tasks[0]} (best in bold); kept samples: "
            "past training samples the learner keeps to learn from again at the end (replay "
            "buffers, episodic memories; 0: replay-free; –: the learner does not say)."
            f"{over}",
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
    rows: list[list[Cell | str]] = []
    for learner, s in stats.items():
        stds = final_task_std(runs, learner, len(tasks)) if len(runs) > 1 else [None] * len(tasks)
        finals = _finals(s, len(tasks))
        rows.append([learner, *(plus_minus(v, d) for v, d in zip(finals, stds, strict=True))])
    return Table(
        "Final accuracy per task",
        [Column.label("learner"), *(Column(t) for t in tasks)],
        rows,
        section=section,
    )


def _gap_table(stats: dict, tasks: list[str], n_seeds: int, section: str | None) -> Table:
    rows: list[list[Cell | str]] = []
    for learner, s in stats.items():
        for gap in s.get("gaps") or []:
            new = int(gap.get("task", 0))
            rows.append(
                [
                    learner,
                    tasks[new] if 0 <= new < len(tasks) else str(new),
                    format_number(gap.get("switch")),
                    format_number(gap.get("before")),
                    format_number(gap.get("minimum")),
                    format_number(gap.get("drop")),
                    _recovery_cell(gap, n_seeds),
                ]
            )
    header = ["new task", "at iteration", "before", "lowest", "gap", "recovery"]
    return Table(
        f"Stability gap of {tasks[0]}",
        [Column.label("learner"), Column.label(header[0]), *(Column(h) for h in header[1:])],
        rows,
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
    rows: list[list[Cell | str]] = []
    for learner in stats:
        for seed, run in runs.items():
            s = run.get(learner)
            if s is None:
                continue
            rows.append(
                [
                    learner,
                    seed,
                    *(format_number(s.get(k)) for k, _, _ in SCORES),
                    *(format_number((s.get("wf") or {}).get(k)) for k in wf_keys),
                    *(format_number(v) for v in _finals(s, len(tasks))),
                    format_number(s.get("max_gap")),
                ]
            )
    return Table(
        "Per seed",
        [Column.label("learner"), *(Column(h) for h in header)],
        rows,
        note="Each seed's run on its own (max gap: the largest stability gap of the first task).",
        section=section,
    )
