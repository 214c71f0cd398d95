"""Log a results folder to MLflow (``adaptloop run --mlflow``; the ``[mlflow]`` extra).

One MLflow run per adaptloop run, in the MLflow experiment named after the adaptloop
experiment, at MLflow's own tracking URI (``$MLFLOW_TRACKING_URI``; MLflow's default
otherwise). What is logged is read from the folder alone, as the report does:

- parameters: every setting of ``experiment.toml`` by its key path (``stream.kind``,
  ``learners.adwin_reset.detector``), and ``seed``;
- metrics per record: each metric column of ``records.parquet`` as ``LEARNER/METRIC`` (continual
  runs: ``SEQUENCE/seed=S/LEARNER/task=T/accuracy``), its step the record's ``position`` (samples
  seen; time units for federated runs) or ``iteration``;
- final metrics: each learner's row of ``summary.csv`` as ``LEARNER/final/KEY``;
- artifacts: every file of the folder (records, summaries, experiment, report and figures).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from adaptloop.results.folder import read_summary, summary_rows

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BATCH = 1000
"""Metrics per request (MLflow's ``log_batch`` takes at most 1,000)."""

STEPS = ("position", "iteration")
"""Record columns that give a metric's step, the first present wins."""

SERIES = ("sequence", "seed", "learner", "eval_task")
"""Record columns that tell one metric series from another."""


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A TOML table as ``{"key.path": value}`` (lists and values as their text).

    >>> flatten({"seed": 7, "stream": {"kind": "sea", "drifts": [{"at": 5}]}})
    {'seed': '7', 'stream.kind': 'sea', 'stream.drifts': "[{'at': 5}]"}
    """
    out: dict[str, str] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = str(value)
    return out


def _series_name(row: dict[str, Any], metric: str) -> str:
    parts = []
    for column in SERIES:
        if column in row:
            value = row[column]
            parts.append(str(value) if column in ("sequence", "learner") else f"{column}={value}")
    return "/".join([*parts, metric]).replace("eval_task=", "task=")


def record_metrics(records: Any) -> list[tuple[str, float, int]]:
    """``(name, value, step)`` for every finite metric value of a records table (pyarrow)."""
    columns = records.column_names
    step = next((c for c in STEPS if c in columns), "record")
    skip = {step, "record", "n", "task", *SERIES}
    metrics = [
        c
        for c in columns
        if c not in skip
        and records.schema.field(c).type.num_fields == 0
        and str(records.schema.field(c).type) in ("double", "float")
    ]
    out = []
    for row in records.select([c for c in columns if c in (step, *SERIES, *metrics)]).to_pylist():
        for metric in metrics:
            value = row[metric]
            if value is not None and math.isfinite(value):
                out.append((_series_name(row, metric), float(value), int(row[step])))
    return out


def log_run(folder: str | Path) -> str:
    """Log the results folder ``folder`` as one MLflow run; returns the run's id."""
    import mlflow
    import pyarrow.parquet as pq
    from mlflow.entities import Metric, Param

    folder = Path(folder)
    summary = read_summary(folder)
    experiment = tomllib.loads((folder / "experiment.toml").read_text(encoding="utf-8"))
    params = {**flatten(experiment), "seed": str(summary.get("seed", experiment.get("seed", 0)))}
    name = str(summary.get("experiment_name") or experiment.get("name") or "adaptloop")
    mlflow.set_experiment(name)
    client = mlflow.MlflowClient()
    with mlflow.start_run(run_name=folder.name) as run:
        run_id = run.info.run_id
        mlflow.set_tags(
            {
                "adaptloop_version": summary.get("adaptloop_version", ""),
                "adaptloop_kind": summary.get("kind", ""),
            }
        )
        items = [Param(k[:250], v[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            client.log_batch(run_id, params=items[start : start + 100])
        timestamp = int(run.info.start_time)
        metrics = [
            Metric(key, value, timestamp, step)
            for key, value, step in record_metrics(pq.read_table(folder / "records.parquet"))
        ]
        for row in summary_rows(summary):
            prefix = "/".join(str(row[c]) for c in ("sequence", "learner") if c in row)
            for key, value in row.items():
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if number and math.isfinite(value) and key not in ("sequence", "learner"):
                    metrics.append(Metric(f"{prefix}/final/{key}", float(value), timestamp, 0))
        for start in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + BATCH])
        mlflow.log_artifacts(str(folder))
    return run_id
