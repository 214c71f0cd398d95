"""A run's results folder: ``records.parquet``, ``summary.json`` and the experiment as used.

Any :class:`~adaptloop.results.Result` is written the same way (:func:`write_results`);
``summary.json`` holds the adaptloop version, when and where it ran (:func:`run_metadata`),
the kind of run and its numbers. Reports read this folder; nothing is recomputed from it.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> read_summary(folder)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
adaptloop.results.folder.ResultsError: ... is not a complete results folder: summary.json is missing
"""

from __future__ import annotations

import json
import math
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from adaptloop import __version__

if TYPE_CHECKING:
    from adaptloop.results.result import Result

RESULT_FILES = ("records.parquet", "summary.json", "experiment.toml")


class ResultsError(ValueError):
    """A results folder that cannot be read; the message is one line naming why."""


def incomplete(folder: Path, what: str) -> ResultsError:
    """The error for a folder that lacks ``what`` (or has it broken)."""
    return ResultsError(f"{folder} is not a complete results folder: {what}")


def json_safe(value):
    """NaN and infinities become None (JSON has no such numbers).

    >>> json_safe({"a": [1.0, float("nan")], "b": float("inf")})
    {'a': [1.0, None], 'b': None}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def run_metadata() -> dict:
    """What every summary records about the run: adaptloop version, creation time, machine.

    >>> sorted(run_metadata())
    ['adaptloop_version', 'created', 'machine']
    """
    return {
        "adaptloop_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.machine(),
        },
    }


def write_results(result: Result, out_dir: str | Path, experiment_text: str, **extra) -> Path:
    """Write ``result``'s folder (created if needed) and return its path; ``extra`` keys go to
    the top level of ``summary.json`` (experiment name, seed, wall-clock time...)."""
    import pyarrow.parquet as pq

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(result.records, folder / "records.parquet")
    summary = result.summary_json(**extra)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "experiment.toml").write_text(experiment_text, encoding="utf-8")
    return folder


def read_summary(folder: str | Path) -> dict:
    """The ``summary.json`` of a results folder, or :class:`ResultsError` naming what is wrong."""
    folder = Path(folder)
    if not folder.exists():
        raise ResultsError(f"results folder not found: {folder}")
    if not folder.is_dir():
        raise ResultsError(f"not a results folder (not a directory): {folder}")
    path = folder / "summary.json"
    if not path.is_file():
        raise incomplete(folder, "summary.json is missing")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise incomplete(folder, f"summary.json is not valid JSON ({error})") from None
    if not isinstance(summary, dict):
        raise incomplete(folder, "summary.json is not a JSON object")
    return summary
