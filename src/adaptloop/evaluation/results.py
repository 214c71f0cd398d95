"""A run's results folder: ``records.parquet``, ``summary.json`` and the experiment as used.

``summary.json`` holds: the adaptloop version, when and where it ran, the stream's metadata
(including known drifts), the metrics and window, per-learner final metrics and throughput,
drift-segmented metrics and the wall-clock time. Reports read this folder; nothing is
recomputed from it.

>>> import tempfile, numpy as np
>>> from adaptloop.streams import ArrayStream
>>> from adaptloop.learners.base import BaseLearner
>>> from adaptloop.evaluation import prequential
>>> class Zero(BaseLearner):
...     def __init__(self):
...         super().__init__(task="regression")
...     def _learn(self, X, y): pass
...     def _predict(self, X): return np.zeros(len(X), dtype=np.float32)
...     def _get_state(self): return {}
...     def _set_state(self, state): pass
>>> stream = ArrayStream(np.ones((10, 2)), np.arange(10, dtype=np.float32))
>>> result = prequential(stream, {"zero": Zero()}, batch_size=5)
>>> folder = write_results(result, tempfile.mkdtemp(), experiment_text="")
>>> sorted(p.name for p in folder.iterdir())
['experiment.toml', 'records.parquet', 'summary.json']
>>> read_summary(folder)["learners"]["zero"]["mae"]
4.5
"""

from __future__ import annotations

import json
import math
import platform
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq

from adaptloop import __version__
from adaptloop.evaluation.prequential import RECORD_COLUMNS, PrequentialResult

RESULT_FILES = ("records.parquet", "summary.json", "experiment.toml")


def _json_safe(value):
    """NaN and infinities become None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def run_metadata() -> dict:
    """What every summary records about the run: adaptloop version, creation time, machine."""
    return {
        "adaptloop_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.machine(),
        },
    }


def summary_dict(result: PrequentialResult, **extra) -> dict:
    """The JSON-ready summary of a run (``extra`` keys are added at the top level)."""
    return _json_safe(
        {
            "kind": "prequential",
            **run_metadata(),
            "stream": result.info.to_dict(),
            "metrics": result.metrics,
            "window": result.window,
            "learners": result.summary,
            "drifts": result.drifts,
            "record_columns": RECORD_COLUMNS,
            **extra,
        }
    )


def write_results(
    result: PrequentialResult, out_dir: str | Path, experiment_text: str, **extra
) -> Path:
    """Write the results folder (created if needed) and return its path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(result.records, folder / "records.parquet")
    summary = summary_dict(result, **extra)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "experiment.toml").write_text(experiment_text, encoding="utf-8")
    return folder


def read_summary(folder: str | Path) -> dict:
    """The ``summary.json`` of a results folder."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"no summary.json in {folder}")
    return json.loads(path.read_text(encoding="utf-8"))
