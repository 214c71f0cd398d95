"""Checkpoints: one served model in one self-describing file, and choosing a stored one.

A checkpoint file holds everything needed to serve a model again on a new database: the
experiment's TOML source, the learner's name, the stream's schema (feature names, task,
classes), the model version it was served as, the learner's state (``state_dict()``) as
arrays + JSON (:mod:`adaptloop.serve.state`: safetensors and a versioned JSON schema; no
pickle, nothing in it is executed when it is read), when and by which adaptloop version it was
written, a SHA-256 checksum over all of it and, when a key is given, an HMAC-SHA256 signature.
Layout (bytes)::

    adaptloop-checkpoint 2\\n       <- magic line and format version
    {"adaptloop_version": ..., ...}\\n  <- header: one line of JSON (with "sha256")
    <packed state>                     <- "payload_bytes" long (adaptloop.serve.state)

``sha256`` is taken over the header without its ``sha256`` and ``hmac_sha256`` keys (JSON,
sorted keys) plus a newline plus the payload, so a changed experiment source is caught as well
as a flipped bit in the state. The checksum detects corruption only (anyone can recompute it);
``hmac_sha256`` is the HMAC of the same bytes with the operator's key (``--checkpoint-key FILE``
or ``$ADAPTLOOP_CHECKPOINT_KEY``): with a key, :func:`read_checkpoint` refuses a file that is
unsigned or whose signature does not verify, so only files written by a holder of the key are
served. Format 1 files (a pickle payload, written by adaptloop before signing existed) are
refused unless the caller passes ``trust_pickle=True`` (``--trust-pickle``).

There is one export: :func:`export_checkpoint` writes the served model of the newest stored
checkpoint (of a version) that verifies. ``GET /v1/model/checkpoint`` calls it on the running
service's store, ``adaptloop checkpoint export --db DB [--version N] --out FILE`` on the
database opened read-only (:func:`export_from_db`); serve the file with ``adaptloop serve
--checkpoint FILE --db NEW.db``. :func:`newest_usable` is the one rule for picking a stored
checkpoint (newest first, skipping those that do not verify or load), for exports, rollbacks
and recovery alike.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
>>> header = {"experiment_source": "seed = 1", "experiment_name": "x", "learner": "lr",
...           "feature_names": ["x0"], "task": "binary", "classes": ["0", "1"]}
>>> write_checkpoint(path, CheckpointFile.encode(header, 3, {"w": [1.0, 2.0]}, key=b"k")).name
'model.ckpt'
>>> ckpt = read_checkpoint(path, key=b"k")
>>> ckpt.model_version, ckpt.header["learner"], ckpt.state(), ckpt.file_name()
(3, 'lr', {'w': [1.0, 2.0]}, 'x-lr-v3.ckpt')
>>> read_checkpoint(path, key=b"another key")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
adaptloop.serve.errors.CheckpointFileError: checkpoint: ...: the signature does not verify ...
>>> with open(path, "r+b") as f:
...     _ = f.seek(-3, os.SEEK_END); _ = f.write(b"!")
>>> read_checkpoint(path)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
adaptloop.serve.errors.CheckpointFileError: checkpoint: ...: checksum mismatch (...)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar

from adaptloop.serve.errors import CheckpointFileError, InputError, UnknownVersion
from adaptloop.serve.state import SCHEMA, StateEncodingError, pack, unpack
from adaptloop.serve.store import Checkpoint, ReadOnlyStore

T = TypeVar("T")

MAGIC = b"adaptloop-checkpoint 2\n"
"""First line of every checkpoint file (format version 2: arrays + JSON, optionally signed)."""
LEGACY_MAGIC = b"adaptloop-checkpoint 1\n"
"""First line of a format 1 file (a pickle: refused unless ``trust_pickle``)."""
KEY_ENV = "ADAPTLOOP_CHECKPOINT_KEY"
"""Environment variable holding the checkpoint signing key (``--checkpoint-key FILE`` wins)."""
UNSIGNED = ("sha256", "hmac_sha256")
SPEC_KEYS = ("experiment_source", "experiment_name", "learner", "feature_names", "task", "classes")
"""Header keys that describe what is served (the same as a database's ``meta``)."""
MAX_HEADER_BYTES = 16 * 1024 * 1024


def _signed_bytes(header: dict[str, Any], payload: bytes) -> bytes:
    unsigned = {k: v for k, v in header.items() if k not in UNSIGNED}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode() + b"\n" + payload


def checkpoint_digest(header: dict[str, Any], payload: bytes) -> str:
    """The ``sha256`` of a checkpoint file with ``header`` and ``payload`` (hex)."""
    return hashlib.sha256(_signed_bytes(header, payload)).hexdigest()


def _signature(key: bytes, header: dict[str, Any], payload: bytes) -> str:
    return hmac.new(key, _signed_bytes(header, payload), hashlib.sha256).hexdigest()


def load_key(key_file: str | os.PathLike | None = None, env: str = KEY_ENV) -> bytes | None:
    """The signing key: the contents of ``key_file`` (surrounding whitespace stripped) if
    given, else ``$ADAPTLOOP_CHECKPOINT_KEY``, else None; ``InputError`` (field
    ``checkpoint_key``) when the file is missing or empty, or the key shorter than 16 bytes.

    >>> load_key(None, env="ADAPTLOOP_NO_SUCH_VARIABLE") is None
    True
    """
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise InputError("checkpoint_key", f"no such file: {path}")
        key = path.read_bytes().strip()
    else:
        key = os.environ.get(env, "").strip().encode()
        if not key:
            return None
    if len(key) < 16:
        raise InputError("checkpoint_key", "the key must be at least 16 bytes long")
    return key


def _adaptloop_version() -> str:
    from adaptloop import __version__

    return __version__


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint file's verified header and its still packed state; ``path`` is where it
    was read from (None for one just encoded); ``legacy`` for a format 1 (pickle) file read
    with ``trust_pickle``."""

    header: dict[str, Any]
    payload: bytes
    path: Path | None = None
    legacy: bool = False

    @classmethod
    def encode(
        cls,
        spec_meta: dict[str, Any],
        model_version: int,
        state: Any,
        key: bytes | None = None,
        **extra: Any,
    ) -> CheckpointFile:
        """A checkpoint serving ``state`` (a learner's ``state_dict()``) as ``model_version``
        of what ``spec_meta`` describes (a database's ``meta``: see :data:`SPEC_KEYS`),
        signed with ``key`` when given; ``extra`` goes into the header as it is (JSON
        values). ``CheckpointFileError`` naming the key path when the state holds a value that
        a checkpoint cannot store (see :mod:`adaptloop.serve.state`).

        >>> CheckpointFile.encode({k: None for k in SPEC_KEYS}, 1, {}).to_bytes()[:22]
        b'adaptloop-checkpoint 2'
        """
        missing = [name for name in SPEC_KEYS if name not in spec_meta]
        if missing:
            raise ValueError(f"checkpoint header: missing {', '.join(missing)}")
        try:
            payload = pack(state)
        except StateEncodingError as error:
            raise CheckpointFileError(
                f"learner {spec_meta['learner']!r} cannot be checkpointed: {error}"
            ) from None
        header = {
            **{name: spec_meta[name] for name in SPEC_KEYS},
            **extra,
            "format": 2,
            "state_schema": SCHEMA,
            "model_version": int(model_version),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "adaptloop_version": _adaptloop_version(),
            "payload_bytes": len(payload),
        }
        header["sha256"] = checkpoint_digest(header, payload)
        if key is not None:
            header["hmac_sha256"] = _signature(key, header, payload)
        return cls(header, payload)

    def to_bytes(self) -> bytes:
        """The file's bytes."""
        magic = LEGACY_MAGIC if self.legacy else MAGIC
        return magic + json.dumps(self.header, sort_keys=True).encode() + b"\n" + self.payload

    @property
    def model_version(self) -> int:
        return int(self.header["model_version"])

    def file_name(self) -> str:
        """``<experiment>-<learner>-v<version>.ckpt``, safe as a file name."""
        stem = f"{self.header['experiment_name']}-{self.header['learner']}-v{self.model_version}"
        return re.sub(r"[^A-Za-z0-9._-]", "_", stem) + ".ckpt"

    def provenance(self) -> dict[str, Any]:
        """What a database started from this file records about it."""
        keys = ("sha256", "model_version", "created", "adaptloop_version", "experiment_name")
        name = None if self.path is None else self.path.name
        signed = "hmac_sha256" in self.header
        return {"file": name, **{key: self.header.get(key) for key in keys}, "signed": signed}

    def state(self) -> Any:
        """The learner's state (the checksum was verified on reading); a legacy file's is
        unpickled (it was read with ``trust_pickle``)."""
        try:
            if self.legacy:
                return pickle.loads(self.payload)
            return unpack(self.payload)
        except Exception as error:  # noqa: BLE001 - any malformed state: one message
            raise CheckpointFileError(f"{self.path}: cannot read the state: {error}") from None


def write_checkpoint(path: str | Path, checkpoint: CheckpointFile) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (a temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as f:
        f.write(checkpoint.to_bytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
    return path


def read_checkpoint(
    path: str | Path, key: bytes | None = None, trust_pickle: bool = False
) -> CheckpointFile:
    """Read ``path`` and verify its format, length, checksum and, with ``key``, signature;
    ``CheckpointFileError`` (one line) when it is missing, not a checkpoint file, truncated,
    corrupted, unsigned or signed with another key (with ``key``), or a format 1 pickle
    file without ``trust_pickle``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointFileError(f"{path}: cannot read: {error.strerror or error}") from None
    legacy = data.startswith(LEGACY_MAGIC)
    if legacy and not trust_pickle:
        raise CheckpointFileError(
            f"{path}: a format 1 checkpoint holds a pickle, which runs code when loaded: "
            "refused (re-export it with this adaptloop, or pass --trust-pickle if you wrote "
            "it yourself)"
        )
    if legacy and key is not None:
        raise CheckpointFileError(f"{path}: a format 1 checkpoint cannot be signed")
    if not (legacy or data.startswith(MAGIC)):
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
        for name in (*SPEC_KEYS, "model_version"):
            header[name]  # noqa: B018 - present, or KeyError
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointFileError(
            f"{path}: corrupted checkpoint header ({type(error).__name__}: {error})"
        ) from None
    payload = data[end + 1 :]
    if len(payload) != size:
        raise CheckpointFileError(
            f"{path}: truncated or corrupted: {len(payload)} state bytes, header says {size}"
        )
    if checkpoint_digest(header, payload) != expected:
        raise CheckpointFileError(
            f"{path}: checksum mismatch (the file is corrupted or was changed)"
        )
    if key is not None:
        signature = header.get("hmac_sha256")
        if not isinstance(signature, str):
            raise CheckpointFileError(
                f"{path}: not signed, and a checkpoint key is set: only signed files are served"
            )
        if not hmac.compare_digest(signature, _signature(key, header, payload)):
            raise CheckpointFileError(
                f"{path}: the signature does not verify with the given key (written by "
                "someone else, or changed since)"
            )
    return CheckpointFile(header, payload, path, legacy)


def newest_usable(
    stored: Iterable[Checkpoint], use: Callable[[Checkpoint, Any], T], skipped: list[str]
) -> T | None:
    """``use(checkpoint, verified state)`` for each stored checkpoint, newest first, until
    one succeeds: its result (None when none does). Each one that does not verify or that
    ``use`` refuses is skipped, and why is appended to ``skipped`` (one line naming it).

    >>> from adaptloop.serve.state import pack
    >>> from adaptloop.serve.store import checksum
    >>> good = pack({"served": 1})
    >>> stored = [Checkpoint(2, 1, "snapshot", 0, "bad", {}, b""),
    ...           Checkpoint(1, 1, "initial", 0, checksum(good), {}, good)]
    >>> skipped = []
    >>> newest_usable(stored, lambda c, state: (c.id, state["served"]), skipped), skipped
    ((1, 1), ['checkpoint 2 (version 1): checksum mismatch'])
    """
    for checkpoint in stored:
        try:
            return use(checkpoint, checkpoint.verified_state())
        except Exception as error:
            message = str(error)
            if not message.startswith("checkpoint "):
                message = f"checkpoint {checkpoint.id} (version {checkpoint.version}): "
                message += f"cannot restore: {type(error).__name__}: {error}"
            skipped.append(message)
    return None


def require_usable(
    stored: Iterable[Checkpoint],
    use: Callable[[Checkpoint, Any], T],
    version: int | None,
    where: str = "",
) -> T:
    """:func:`newest_usable`, or ``UnknownVersion`` (field ``version``) naming ``version``,
    ``where`` and why each stored checkpoint was skipped when none is usable."""
    skipped: list[str] = []
    result = newest_usable(stored, use, skipped)
    if result is None:
        which = "" if version is None else f" of version {version}"
        detail = f" ({'; '.join(skipped)})" if skipped else ""
        raise UnknownVersion("version", f"no verified checkpoint{which}{where}{detail}")
    return result


class StoredCheckpoints(Protocol):
    """Where checkpoints are stored: a :class:`~adaptloop.serve.store.Store` or a
    :class:`~adaptloop.serve.store.ReadOnlyStore`."""

    def get_meta(self) -> dict[str, Any]: ...

    def checkpoints(self, version: int | None = None) -> list[Checkpoint]: ...


def export_checkpoint(
    store: StoredCheckpoints,
    version: int | None = None,
    where: str = "",
    key: bytes | None = None,
) -> CheckpointFile:
    """A checkpoint file of the served model of the newest checkpoint in ``store`` (of
    ``version`` when given) that verifies, signed with ``key`` when given; ``UnknownVersion``
    (field ``version``, naming ``where``) when none does.

    >>> import tempfile, os
    >>> from adaptloop.serve.store import Store
    >>> store = Store(os.path.join(tempfile.mkdtemp(), "e.db")).start()
    >>> export_checkpoint(store, 7)
    Traceback (most recent call last):
    ...
    adaptloop.serve.errors.UnknownVersion: version: no verified checkpoint of version 7
    >>> store.close()
    """
    meta = store.get_meta()
    return require_usable(
        store.checkpoints(version),
        lambda checkpoint, state: CheckpointFile.encode(
            meta,
            checkpoint.version,
            state["served"],
            key=key,
            source_checkpoint=checkpoint.id,
            kind=checkpoint.kind,
        ),
        version,
        where,
    )


def export_from_db(
    db: str | Path, version: int | None = None, key: bytes | None = None
) -> CheckpointFile:
    """A checkpoint file of the model served by database ``db``: its newest verified stored
    checkpoint (of ``version`` when given), signed with ``key`` when given. Opens ``db``
    read-only, so a running service may keep using it. ``UnknownVersion`` when there is no
    such checkpoint, ``StoreError`` (field ``db``) when ``db`` is not an adaptloop database."""
    with ReadOnlyStore(db) as store:
        return export_checkpoint(store, version, f" in {db}", key)
