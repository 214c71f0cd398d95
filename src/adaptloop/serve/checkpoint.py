"""Checkpoint files: one served model in one self-describing file, to start a service from.

A checkpoint file holds everything needed to serve a model again on a new database: the
experiment's TOML source, the learner's name, the stream's schema (feature names, task,
classes), the model version it was served as, the learner's state (``state_dict()``) as
pickle bytes, when and by which adaptloop version it was written, and a SHA-256 checksum
over all of it. Layout (bytes)::

    adaptloop-checkpoint 1\\n       <- magic line and format version
    {"adaptloop_version": ..., ...}\\n  <- header: one line of JSON (with "sha256")
    <pickle of the learner's state>    <- "payload_bytes" long

``sha256`` is taken over the header without its ``sha256`` key (JSON, sorted keys) plus a
newline plus the payload, so a changed experiment source is caught as well as a flipped bit
in the state. :func:`read_checkpoint` verifies the checksum before anything is unpickled.

Checkpoint files are pickles: load only files you trust, since unpickling runs code (the
checksum detects corruption, not a malicious file written with a matching checksum).

Write one with ``GET /v1/model/checkpoint`` (token required) or ``adaptloop checkpoint export
--db DB [--version N] --out FILE``; serve it with ``adaptloop serve --checkpoint FILE --db NEW.db``.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
>>> header = {"experiment_source": "seed = 1", "experiment_name": "x", "learner": "lr",
...           "feature_names": ["x0"], "task": "binary", "classes": ["0", "1"]}
>>> write_checkpoint(path, encode_checkpoint(header, 3, {"w": [1.0, 2.0]})).name
'model.ckpt'
>>> ckpt = read_checkpoint(path)
>>> ckpt.model_version, ckpt.learner, ckpt.state()
(3, 'lr', {'w': [1.0, 2.0]})
>>> with open(path, "r+b") as f:
...     _ = f.seek(-3, os.SEEK_END); _ = f.write(b"!")
>>> read_checkpoint(path)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
adaptloop.serve.checkpoint.CheckpointFileError: ...: checksum mismatch (...)
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from adaptloop.serve.store import Checkpoint

MAGIC = b"adaptloop-checkpoint 1\n"
"""First line of every checkpoint file (format version 1)."""
SPEC_KEYS = ("experiment_source", "experiment_name", "learner", "feature_names", "task", "classes")
"""Header keys that describe what is served (the same as a database's ``meta``)."""
MAX_HEADER_BYTES = 16 * 1024 * 1024


class CheckpointFileError(ValueError):
    """A checkpoint file that cannot be used; the message is one line naming the file."""


def _digest(header: dict[str, Any], payload: bytes) -> str:
    unsigned = {k: v for k, v in header.items() if k != "sha256"}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(text + b"\n" + payload).hexdigest()


def _adaptloop_version() -> str:
    from adaptloop import __version__

    return __version__


def encode_checkpoint(
    spec_meta: dict[str, Any], model_version: int, state: Any, **extra: Any
) -> bytes:
    """The bytes of a checkpoint file serving ``state`` (a learner's ``state_dict()``) as
    ``model_version`` of what ``spec_meta`` describes (a database's ``meta``: see
    :data:`SPEC_KEYS`); ``extra`` goes into the header as it is (JSON values).

    >>> encode_checkpoint({k: None for k in SPEC_KEYS}, 1, {}).startswith(MAGIC)
    True
    """
    missing = [key for key in SPEC_KEYS if key not in spec_meta]
    if missing:
        raise ValueError(f"checkpoint header: missing {', '.join(missing)}")
    payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    header = {
        **{key: spec_meta[key] for key in SPEC_KEYS},
        **extra,
        "format": 1,
        "model_version": int(model_version),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "adaptloop_version": _adaptloop_version(),
        "pickle_protocol": pickle.HIGHEST_PROTOCOL,
        "payload_bytes": len(payload),
    }
    header["sha256"] = _digest(header, payload)
    return MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload


def write_checkpoint(path: str | Path, data: bytes) -> Path:
    """Write checkpoint bytes to ``path`` atomically (a temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
    return path


@dataclass(frozen=True)
class CheckpointFile:
    """A read and verified checkpoint file (see :func:`read_checkpoint`); the state is still
    pickled until :meth:`state` is called."""

    path: Path
    header: dict[str, Any]
    payload: bytes

    @property
    def model_version(self) -> int:
        return int(self.header["model_version"])

    @property
    def learner(self) -> str:
        return str(self.header["learner"])

    @property
    def experiment_source(self) -> str:
        return str(self.header["experiment_source"])

    @property
    def sha256(self) -> str:
        return str(self.header["sha256"])

    def provenance(self) -> dict[str, Any]:
        """What a database started from this file records about it."""
        keys = ("sha256", "model_version", "created", "adaptloop_version", "experiment_name")
        return {"file": self.path.name, **{key: self.header.get(key) for key in keys}}

    def state(self) -> Any:
        """The learner's state, unpickled (the checksum was verified on reading)."""
        try:
            return pickle.loads(self.payload)
        except Exception as error:
            raise CheckpointFileError(f"{self.path}: cannot unpickle the state: {error}") from None


def read_checkpoint(path: str | Path) -> CheckpointFile:
    """Read ``path`` and verify its format, length and checksum; ``CheckpointFileError``
    (one line) when it is missing, not a checkpoint file, truncated or corrupted."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointFileError(f"{path}: cannot read: {error.strerror or error}") from None
    if not data.startswith(MAGIC):
        if data.startswith(MAGIC.split(b" ")[0]):
            raise CheckpointFileError(f"{path}: unsupported checkpoint format: {data[:40]!r}")
        raise CheckpointFileError(f"{path}: not an adaptloop checkpoint file")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_BYTES)
    try:
        if end < 0:
            raise ValueError("no end of header")
        header = json.loads(data[len(MAGIC) : end])
        if not isinstance(header, dict):
            raise ValueError("not an object")
        size, expected = int(header["payload_bytes"]), str(header["sha256"])
        for key in (*SPEC_KEYS, "model_version"):
            header[key]  # noqa: B018 - present, or KeyError
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointFileError(
            f"{path}: corrupted checkpoint header ({type(error).__name__}: {error})"
        ) from None
    payload = data[end + 1 :]
    if len(payload) != size:
        raise CheckpointFileError(
            f"{path}: truncated or corrupted: {len(payload)} state bytes, header says {size}"
        )
    if _digest(header, payload) != expected:
        raise CheckpointFileError(
            f"{path}: checksum mismatch (the file is corrupted or was changed)"
        )
    return CheckpointFile(path, header, payload)


def export_from_db(db: str | Path, version: int | None = None) -> bytes:
    """Checkpoint bytes of the model served by database ``db``: its newest verified stored
    checkpoint (of ``version`` when given). Opens ``db`` read-only, so a running service may
    keep using it. ``LookupError`` when there is no such checkpoint, ``ValueError`` when
    ``db`` is not an adaptloop database."""
    db = Path(db)
    if not db.is_file():
        raise ValueError(f"--db: no such database: {db}")
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ValueError(f"--db: {db}: {error}") from None
    try:
        meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        sql = "SELECT id, version, kind, learned_seq, sha256, meta, state FROM checkpoints"
        args: tuple = ()
        if version is not None:
            sql, args = sql + " WHERE version = ?", (int(version),)
        rows = conn.execute(sql + " ORDER BY id DESC", args).fetchall()
    except sqlite3.Error as error:
        raise ValueError(f"--db: {db} is not an adaptloop database ({error})") from None
    finally:
        conn.close()
    if not meta:
        raise ValueError(f"--db: {db} is not an adaptloop database (no meta)")
    errors = []
    for r in rows:
        stored = Checkpoint(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6])
        try:
            served = stored.verified_state()["served"]
        except (ValueError, KeyError, TypeError) as error:
            errors.append(str(error))
            continue
        return encode_checkpoint(
            meta, stored.version, served, source_checkpoint=stored.id, kind=stored.kind
        )
    which = "" if version is None else f" of version {version}"
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise LookupError(f"--version: no verified checkpoint{which} in {db}{detail}")
