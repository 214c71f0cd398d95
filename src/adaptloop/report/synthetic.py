"""Synthetic results folders, in exactly the schema runs write, for examples, tests and benchmarks.

:func:`write_prequential_folder` makes a prequential folder of any size (10 million records in a
few seconds: everything is vectorised); :func:`write_continual_folder` a continual-learning one.
The numbers look like real runs (drops at drifts, recovery, a stability gap) but are made up.

>>> import tempfile
>>> folder = write_continual_folder(tempfile.mkdtemp())
>>> sorted(p.name for p in folder.iterdir())
['experiment.toml', 'records.parquet', 'summary.json']
"""

from __future__ import annotations

import json
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adaptloop import __version__
from adaptloop.evaluation.continual import stability_gaps
from adaptloop.evaluation.drift import drift_segments
from adaptloop.report.data import ContinualResults, PrequentialResults, load_results
from adaptloop.results.schema import PREQUENTIAL_RECORD_COLUMNS
from adaptloop.streams.base import Drift

DEFAULT_LEARNERS = ("static", "window_retrain", "adwin_reset")


def _machine() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.machine(),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Trailing mean over ``width`` records (the synthetic windowed metric)."""
    if width <= 1:
        return values
    sums = np.cumsum(np.concatenate([[0.0], values]))
    index = np.arange(1, len(values) + 1)
    lo = np.maximum(0, index - width)
    return (sums[index] - sums[lo]) / (index - lo)


def write_prequential_folder(
    folder: str | Path,
    learners: tuple[str, ...] = DEFAULT_LEARNERS,
    records_per_learner: int = 600,
    batch_size: int = 100,
    drifts: tuple[int, ...] | None = None,
    window: int = 1000,
    seed: int = 0,
) -> Path:
    """Write a prequential results folder with ``len(learners) * records_per_learner`` records.

    Drifts default to one third and two thirds of the stream. Learner ``i`` loses accuracy at
    each drift and recovers at a rate that grows with ``i`` (learner 0 never recovers); odd
    learners raise a detector alarm shortly after each drift.

    >>> import tempfile
    >>> folder = write_prequential_folder(tempfile.mkdtemp(), records_per_learner=50)
    >>> pq.read_table(folder / "records.parquet").num_rows
    150
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_samples = records_per_learner * batch_size
    if drifts is None:
        drifts = (n_samples // 3, 2 * n_samples // 3)
    drift_list = [Drift(int(p)) for p in drifts]
    positions = np.arange(1, records_per_learner + 1, dtype=np.int64) * batch_size
    counts = np.full(records_per_learner, batch_size, dtype=np.int64)
    window_records = max(1, window // batch_size)
    columns: dict[str, list[np.ndarray]] = {}
    summaries: dict[str, dict] = {}
    segments: list[dict] = []
    alarm_counts: list[np.ndarray] = []
    alarm_values: list[int] = []
    seconds_per_sample = np.geomspace(2e-7, 5e-5, max(2, len(learners)))
    for i, name in enumerate(learners):
        level = 0.9 - 0.01 * i
        accuracy = np.full(records_per_learner, level)
        for drift in drift_list:
            since = positions - drift.position
            hurt = since > 0
            rate = 0.0 if i == 0 else 2e-4 * i * 10_000 / max(n_samples, 1) * 10
            accuracy -= np.where(hurt, 0.25 * np.exp(-rate * np.maximum(since, 0)), 0.0)
        batch = np.clip(accuracy + rng.normal(0, 0.03, records_per_learner), 0, 1)
        windowed = _smooth(batch, window_records)
        cumulative = np.cumsum(batch * counts) / np.cumsum(counts)
        predict = rng.gamma(4.0, seconds_per_sample[i] / 8, records_per_learner) * batch_size
        learn = rng.gamma(4.0, seconds_per_sample[i] / 8, records_per_learner) * batch_size
        counts_here = np.zeros(records_per_learner, dtype=np.int64)
        flat_alarms: list[int] = []
        if i % 2 == 1:
            for drift in drift_list:
                at = drift.position + 3 * batch_size
                r = int(np.searchsorted(positions, at))
                if r < records_per_learner:
                    counts_here[r] += 1
                    flat_alarms.append(at)
        alarm_counts.append(counts_here)
        alarm_values.extend(flat_alarms)
        for key, values in (
            ("record", np.arange(records_per_learner, dtype=np.int64)),
            ("position", positions),
            ("n", counts),
            ("accuracy", cumulative),
            ("accuracy_window", windowed),
            ("accuracy_batch", batch),
            ("predict_seconds", predict),
            ("learn_seconds", learn),
        ):
            columns.setdefault(key, []).append(values)
        total_seconds = float(predict.sum() + learn.sum())
        summaries[name] = {
            "n_samples": n_samples,
            "accuracy": float(cumulative[-1]),
            "accuracy_window": float(windowed[-1]),
            "predict_seconds": float(predict.sum()),
            "learn_seconds": float(learn.sum()),
            "samples_per_second": n_samples / total_seconds,
            "alarms": flat_alarms,
        }
        own = {
            "position": positions,
            "n": counts,
            "accuracy_batch": batch,
            "accuracy_window": windowed,
        }
        for seg in drift_segments(own, drift_list, "accuracy", window):
            segments.append({"learner": name, **seg})
    n_learners = len(learners)
    codes = np.repeat(np.arange(n_learners, dtype=np.int32), records_per_learner)
    learner_column = pa.DictionaryArray.from_arrays(
        pa.array(codes), pa.array(list(learners), pa.string())
    ).cast(pa.string())
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(alarm_counts))]).astype(np.int32)
    values = np.asarray(alarm_values, dtype=np.int64)
    alarm_column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int64()))
    table = pa.table(
        {
            "learner": learner_column,
            **{key: np.concatenate(parts) for key, parts in columns.items()},
            "alarms": alarm_column,
        }
    )
    pq.write_table(table, folder / "records.parquet")
    experiment = (
        f'name = "synthetic"\nseed = {seed}\n\n[stream]\nkind = "synthetic"\nn = {n_samples}\n'
        f"batch_size = {batch_size}\n\n[evaluation]\nwindow = {window}\n"
    )
    summary = {
        "kind": "prequential",
        "adaptloop_version": __version__,
        "created": _now(),
        "machine": _machine(),
        "stream": {
            "name": "synthetic",
            "feature_names": ["x0", "x1", "x2"],
            "task": "binary",
            "classes": ["0", "1"],
            "n_samples": n_samples,
            "drifts": [{"position": d.position, "width": d.width} for d in drift_list],
        },
        "metrics": ["accuracy"],
        "window": window,
        "learners": summaries,
        "drifts": segments,
        "record_columns": PREQUENTIAL_RECORD_COLUMNS,
        "experiment_name": "synthetic",
        "seed": seed,
        "wall_seconds": float(
            sum(s["predict_seconds"] + s["learn_seconds"] for s in summaries.values())
        ),
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "experiment.toml").write_text(experiment, encoding="utf-8")
    return folder


def write_continual_folder(
    folder: str | Path,
    learners: tuple[str, ...] = ("naive", "replay"),
    n_tasks: int = 4,
    iterations_per_task: int = 500,
    eval_every: int = 25,
    task_names_in_records: bool = False,
    seed: int = 0,
) -> Path:
    """Write a continual-learning results folder (``"kind": "continual"``).

    ``records.parquet`` has one row per learner, evaluation point and evaluated task:
    ``learner, iteration, task, eval_task, accuracy`` (tasks as indices, as
    :mod:`adaptloop.evaluation.continual` writes them, or as names when
    ``task_names_in_records``); a task is evaluated from the start of its own training on.
    Learner 0 forgets earlier tasks; the others dip right after each new task starts (the
    stability gap) and then recover most of it.

    >>> import tempfile
    >>> folder = write_continual_folder(tempfile.mkdtemp(), n_tasks=2, iterations_per_task=50)
    >>> pq.read_table(folder / "records.parquet").column_names
    ['learner', 'iteration', 'task', 'eval_task', 'accuracy']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tasks = [f"T{k + 1}" for k in range(n_tasks)]
    boundaries = [k * iterations_per_task for k in range(n_tasks)]
    total = n_tasks * iterations_per_task
    iterations = np.arange(0, total + 1, eval_every)
    rows: dict[str, list] = {c: [] for c in ("learner", "iteration", "task", "eval_task")}
    accuracy_parts = []
    stats = {}
    for i, name in enumerate(learners):
        keep = 0.25 if i == 0 else 0.85
        finals = []
        curves = np.full((len(iterations), n_tasks), np.nan)
        for t in range(n_tasks):
            start = boundaries[t]
            learned = 0.95 * (1 - np.exp(-(iterations - start) / (0.15 * iterations_per_task)))
            acc = np.where(iterations < start, 0.1 + 0.0 * iterations, 0.1 + 0.85 * learned)
            for k in range(t + 1, n_tasks):
                since = iterations - boundaries[k]  # the point at the boundary ends task k - 1
                later = since > 0
                dip = 0.45 * np.exp(-(since - eval_every) / (0.08 * iterations_per_task))
                target = 0.1 + (acc - 0.1) * keep
                acc = np.where(later, np.minimum(acc, target) - dip, acc)
            acc = np.clip(acc + rng.normal(0, 0.01, len(iterations)), 0, 1)
            finals.append(float(acc[-1]))
            seen = iterations >= start  # a task is evaluated from its own training on
            curves[seen, t] = acc[seen]
            its, acc = iterations[seen], acc[seen]
            training = np.searchsorted(boundaries, its, side="right") - 1
            rows["learner"] += [name] * len(its)
            rows["iteration"].append(its)
            if task_names_in_records:
                rows["task"] += [tasks[k] for k in training]
                rows["eval_task"] += [tasks[t]] * len(its)
            else:
                rows["task"] += list(training)
                rows["eval_task"] += [t] * len(its)
            accuracy_parts.append(acc)
        gaps = stability_gaps(iterations, curves, boundaries)  # as evaluation records them
        stats[name] = {
            "avg_acc": float(np.mean(finals)),
            "min_acc": float(min(finals) - 0.05),
            "wc_acc": float(np.mean(finals) - 0.1),
            "wf": {"10": float(0.3 * (1 - keep))},
            "wp": {"10": 0.2},
            "final_task_acc": finals,
            "gaps": gaps,
            "max_gap": max(g["drop"] for g in gaps) if gaps else None,
            "train_seconds": float(rng.uniform(1, 5)),
            "eval_seconds": float(rng.uniform(0.2, 1)),
        }
    table = pa.table(
        {
            "learner": pa.array(rows["learner"], pa.string()),
            "iteration": np.concatenate(rows["iteration"]).astype(np.int64),
            "task": pa.array(rows["task"])
            if task_names_in_records
            else np.asarray(rows["task"], dtype=np.int64),
            "eval_task": pa.array(rows["eval_task"])
            if task_names_in_records
            else np.asarray(rows["eval_task"], dtype=np.int64),
            "accuracy": np.concatenate(accuracy_parts),
        }
    )
    pq.write_table(table, folder / "records.parquet")
    summary = {
        "kind": "continual",
        "version": __version__,
        "created": _now(),
        "machine": _machine(),
        "seed": seed,
        "tasks": tasks,
        "task_boundaries": boundaries,
        "eval_every": eval_every,
        "learners": stats,
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "experiment.toml").write_text(
        f'name = "synthetic_continual"\nseed = {seed}\n', encoding="utf-8"
    )
    return folder


def example_results(kind: str = "prequential", **kwargs) -> PrequentialResults | ContinualResults:
    """A synthetic results folder of ``kind`` (``"prequential"`` or ``"continual"``) in a new
    temporary directory, loaded as a report reads it (``kwargs`` go to the folder's writer):
    for examples and doctests.

    >>> example_results("continual", n_tasks=2, iterations_per_task=50).tasks
    ['T1', 'T2']
    """
    writers = {"prequential": write_prequential_folder, "continual": write_continual_folder}
    return load_results(writers[kind](tempfile.mkdtemp(), **kwargs))
