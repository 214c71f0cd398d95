"""A run's results folder: ``records.parquet``, ``summary.json`` (and the same per-learner
numbers as ``summary.csv``) and the experiment as used.

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

RESULT_FILES = ("records.parquet", "summary.json", "summary.csv", "experiment.toml")

OUTPUTS = (*RESULT_FILES, "report.html", "figures")
"""Everything a run writes into its folder (the report's page and figures too): what
:func:`prepare_folder` clears before a run replaces an earlier one, so that nothing stale is
left beside the new results."""


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


def is_results_folder(folder: Path) -> bool:
    """Whether ``folder`` holds an adaptloop run's results (a ``summary.json`` it wrote)."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and "adaptloop_version" in summary


def prepare_folder(out_dir: str | Path, force: bool = False, dry_run: bool = False) -> Path:
    """Make ``out_dir`` ready for a run's results and return it.

    A missing or empty folder is used as it is; an earlier run's results folder is replaced
    (every file a run writes, :data:`OUTPUTS`, is removed: no stale report stays beside new
    results; files of yours in it are left alone). Any other non-empty folder, or a file, is
    refused (:class:`ResultsError`) unless ``force``. ``dry_run`` only checks (before a long
    run).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "notes.txt").write_text("mine")
    >>> prepare_folder(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    adaptloop.results.folder.ResultsError: ... is not empty and holds no adaptloop results...
    >>> prepare_folder(folder, force=True) == folder, (folder / "notes.txt").exists()
    (True, True)
    """
    import shutil

    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ResultsError(f"{folder} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not (force or is_results_folder(folder)):
            raise ResultsError(
                f"{folder} is not empty and holds no adaptloop results; choose another folder, "
                "or --force to write into it"
            )
        if not dry_run:
            for name in OUTPUTS:
                path = folder / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
    if not dry_run:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def summary_rows(summary: dict) -> list[dict]:
    """The per-learner numbers of a ``summary.json``, one flat row per learner (and task
    sequence, for continual runs): what ``summary.csv`` holds. Nested tables of numbers become
    ``key_subkey`` columns; lists (alarm positions, curves) are left to ``summary.json``.

    >>> summary_rows({"kind": "prequential", "learners": {"a": {"accuracy": 0.5, "alarms": [3],
    ...                                                         "wf": {"10": 0.1}}}})
    [{'learner': 'a', 'accuracy': 0.5, 'wf_10': 0.1}]
    """
    if summary.get("kind") == "continual" and "sequences" in summary:
        tables = [
            ({"sequence": name}, seq.get("learners", {}))
            for name, seq in summary["sequences"].items()
        ]
    else:
        tables = [({}, summary.get("learners", {}))]
    rows = []
    for prefix, learners in tables:
        for learner, values in learners.items():
            row: dict = {**prefix, "learner": learner}
            for key, value in values.items():
                if isinstance(value, dict):
                    for sub, inner in value.items():
                        if _scalar(inner):
                            row[f"{key}_{sub}"] = inner
                elif _scalar(value):
                    row[key] = value
            rows.append(row)
    return rows


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def write_summary_csv(summary: dict, path: Path) -> None:
    """``summary.csv``: :func:`summary_rows`, columns in order of first appearance."""
    import csv

    rows = summary_rows(summary)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)


def write_results(result: Result, out_dir: str | Path, experiment_text: str, **extra) -> Path:
    """Write ``result``'s folder (created if needed) and return its path; ``extra`` keys go to
    the top level of ``summary.json`` (experiment name, seed, wall-clock time...)."""
    import pyarrow.parquet as pq

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(result.records, folder / "records.parquet")
    summary = result.summary_json(**extra)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_summary_csv(summary, folder / "summary.csv")
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
