"""Durable store of the service: one writer thread with group commit; SQLite or PostgreSQL.

:class:`SqlStore` is what the service needs from a database (its methods below, and the
trainer lease); :class:`Store` is its SQLite backend (the embedded default, described here),
:class:`adaptloop.serve.postgres.PostgresStore` its PostgreSQL backend (the shared store of a
trainer and many predictors), with the same tables, the same statements and the same
durability promise; :func:`open_store` picks one by the ``db`` given.

Tables: ``meta`` (what the database serves), ``predictions`` (features, prediction and
probabilities per prediction id; pruned by :meth:`Store.prune_predictions`), ``feedback``
(labels in arrival order: ``seq``, with an optional idempotency ``key``), ``checkpoints``
(service states packed as arrays + JSON by :mod:`adaptloop.serve.state`, with a SHA-256
checksum; pruned by :meth:`Store.add_checkpoint`'s retention), ``decisions`` (every
update-gate decision with its numbers) and ``quarantine`` (feedback micro-batches the learner
failed on, with the error).

One server per database: :meth:`Store.start` takes an exclusive lock on ``<db>.lock``
(``flock``; the kernel drops it when the process dies, so a killed server never leaves it
behind) and a second server on the same database is refused with :class:`StoreError`.

All of the service's SQL lives in this module, in the
:class:`Store`'s methods (and :class:`ReadOnlyStore`'s, for reading a database a running
service may be writing); every query reads its columns by name (``sqlite3.Row``). (The
log-maintenance PRAGMAs of the same database run in :mod:`adaptloop.serve.wal`.)

Durability: every write goes through one writer thread that runs the queued jobs of all
waiting requests in one transaction (a savepoint per job, so a refused job changes nothing)
and commits before it resolves their futures; a request is acknowledged only after that.
The journal is WAL with ``synchronous=FULL``: the WAL is fsynced at every commit, so an
acknowledged record survives a killed process *and* a power loss. (``NORMAL`` would survive
a killed process only; group commit makes the fsync cheap, one per batch of requests.)
A job submitted with ``durable=False`` (the prediction log) is committed at ``NORMAL`` when
no durable job shares its group: written to the WAL before its caller is answered, so it
survives a killed process, and fsynced with the next durable commit. That keeps the fsync
(milliseconds) out of every prediction's latency; feedback and checkpoints always wait for it.

Threads: the connection lives on the writer thread only. It is opened there (with
``check_same_thread`` on, so Python refuses any use from another thread), every job runs
there, and no SQLite object leaves it: a job must return plain values (rows, ids, counts),
never a cursor (a job that does is refused and rolled back), and the frames of a job's
exception are cleared on the writer thread before the exception is handed over. Why: a
cursor keeps a reference to its cached prepared statement (``executemany`` always does), and
when it is garbage-collected on another thread (the event loop, after ``await``) CPython
resets that statement there, racing the writer thread that is reusing the same cached
statement for the next job: intermittent ``sqlite3.InterfaceError: bad parameter or other
API misuse`` under load. Parameters are checked too: only ``None``, ``int``, ``float``,
``str`` and ``bytes`` are bound (``sqlite3`` would store a ``numpy.int64`` or
``numpy.float32`` silently as a BLOB through the buffer protocol).

Checkpoint rows never hold a pickle written by this version; rows of older databases do
(*legacy* rows): :meth:`Store.legacy_checkpoints` counts them, and the service refuses such a
database unless the operator passes ``--trust-pickle``, which converts them once.

>>> import tempfile, os
>>> store = Store(os.path.join(tempfile.mkdtemp(), "demo.db")).start()
>>> store.call(lambda conn: conn.execute("SELECT 1 + 1 AS two").fetchone()["two"])
2
>>> store.close()
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import queue
import re
import sqlite3
import threading
import time
import traceback
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from adaptloop.serve.errors import (
    DuplicateFeedback,
    IdempotencyConflict,
    LeaseLost,
    StoreError,
    UnknownPrediction,
)
from adaptloop.serve.state import MAGIC as STATE_MAGIC
from adaptloop.serve.state import StateEncodingError, is_packed, pack, unpack
from adaptloop.serve.wal import WalCheckpointer

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock (one server per database by hand)
    fcntl = None

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    model_version INTEGER NOT NULL,
    features BLOB NOT NULL,
    prediction REAL NOT NULL,
    proba BLOB
);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prediction_id TEXT UNIQUE,
    created REAL NOT NULL,
    features BLOB NOT NULL,
    label REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    learned_seq INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    meta TEXT NOT NULL,
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    at_seq INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    created REAL NOT NULL,
    error TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_created ON predictions (created);
"""
MIGRATIONS = (("feedback", "key", "ALTER TABLE feedback ADD COLUMN key TEXT"),)
"""Columns added since the first schema: (table, column, statement) for older databases."""
INDEXES = "CREATE UNIQUE INDEX IF NOT EXISTS feedback_key ON feedback (key);"
PENDING = "SELECT prediction_id FROM feedback WHERE seq > ? AND prediction_id IS NOT NULL"
"""Predictions whose feedback is stored but not learned yet (kept by the retention pass)."""
_NOT_PACKED = f"substr(state, 1, {len(STATE_MAGIC)}) != ?"

_STOP = object()


def check_parameters(parameters: Any) -> None:
    """Refuse SQL parameters that are not ``None``, ``int``, ``float``, ``str`` or ``bytes``
    (``TypeError`` naming the position and the type). Subclasses bind as their base type
    (``bool``, ``numpy.float64``); other numpy scalars would be stored as BLOBs.

    >>> check_parameters((1, 2.5, "a", b"x", None, True))
    >>> import numpy as np
    >>> check_parameters((1, np.int64(3)))
    Traceback (most recent call last):
    ...
    TypeError: SQL parameter 1: numpy.int64 is not a plain int, float, str, bytes or None
    """
    values = parameters.values() if isinstance(parameters, dict) else parameters
    for i, value in enumerate(values):
        if value is not None and not isinstance(value, (int, float, str, bytes)):
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            raise TypeError(
                f"SQL parameter {i}: {kind} is not a plain int, float, str, bytes or None"
            )


class _Connection(sqlite3.Connection):
    """A connection that checks every parameter it binds (see :func:`check_parameters`)."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        check_parameters(parameters)
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> sqlite3.Cursor:
        rows = list(seq_of_parameters)
        for row in rows:
            check_parameters(row)
        return super().executemany(sql, rows)


_LIVE = (sqlite3.Cursor, sqlite3.Connection, sqlite3.Blob, types.GeneratorType)


def _refuse_live(result: Any, kinds: tuple[type, ...] = _LIVE) -> None:
    """``TypeError`` when a job's result is (or directly holds) a driver object (``kinds``:
    a cursor, a connection) or a generator, which would be used or finalized on another
    thread; cursors are closed here first."""
    items = result if isinstance(result, (list, tuple, set)) else (result,)
    live = [item for item in items if isinstance(item, kinds)]
    if not live:
        return
    for item in live:
        if hasattr(item, "fetchone") and hasattr(item, "close"):  # a cursor
            item.close()
    raise TypeError(
        f"a store job returned a {type(live[0]).__name__}: return plain values "
        "(fetchall(), fetchone(), lastrowid, rowcount), never a cursor; the job was rolled back"
    )


def checksum(blob: bytes) -> str:
    """SHA-256 of a checkpoint blob, hex.

    >>> checksum(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """One row of ``checkpoints`` without its state: ``fetch()`` reads the state's bytes when
    they are needed, so listing checkpoints costs memory for their metadata only (see
    :meth:`Store.checkpoints`). ``fetch`` may also be the bytes themselves.

    >>> Checkpoint(1, 3, "snapshot", 10, "ab", {}, b"").version
    3
    """

    id: int
    version: int
    kind: str
    learned_seq: int
    sha256: str
    meta: dict[str, Any]
    fetch: Callable[[], bytes] | bytes

    @property
    def blob(self) -> bytes:
        """The packed state (read from the database now)."""
        return self.fetch if isinstance(self.fetch, bytes) else self.fetch()

    @property
    def info(self) -> dict[str, Any]:
        """The row without its state: ``id``, ``version``, ``kind``, ``learned_seq`` and the
        checkpoint's ``meta`` keys (what ``GET /v1/model`` shows as its last checkpoint).

        >>> Checkpoint(4, 2, "rollback", 9, "ab", {"rolled_back_to": 1}, b"").info
        {'id': 4, 'version': 2, 'kind': 'rollback', 'learned_seq': 9, 'rolled_back_to': 1}
        """
        keys = {"id": self.id, "version": self.version, "kind": self.kind}
        return {**keys, "learned_seq": self.learned_seq, **self.meta}

    def verified_state(self) -> Any:
        """The unpacked state, or ``ValueError`` when the checksum is bad, the state does
        not unpack, or the row is a legacy pickle (convert those first: see the module
        docstring).

        >>> blob = pack({"a": 1})
        >>> Checkpoint(1, 1, "initial", 0, checksum(blob), {}, blob).verified_state()
        {'a': 1}
        >>> Checkpoint(1, 1, "initial", 0, "0" * 64, {}, blob).verified_state()
        Traceback (most recent call last):
        ...
        ValueError: checkpoint 1 (version 1): checksum mismatch
        """
        blob = self.blob
        where = f"checkpoint {self.id} (version {self.version})"
        if checksum(blob) != self.sha256:
            raise ValueError(f"{where}: checksum mismatch")
        if not is_packed(blob):
            raise ValueError(f"{where}: a legacy pickled state (refused without trust_pickle)")
        try:
            return unpack(blob)
        except StateEncodingError as error:  # a verified blob that does not unpack: skip
            raise ValueError(f"{where}: cannot read the state: {error}") from None


def _clear_frames(error: BaseException) -> None:
    """Clear the locals of the (finished) frames of ``error`` and of its causes, on this
    thread, so that no cursor they hold is finalized on the thread that receives ``error``."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


class RowBatcher:
    """Coalesces row inserts of many requests into one store job (one ``executemany``).

    ``add(rows)`` queues ``rows`` and returns the future of the job that will insert them;
    every request that adds rows before that job runs shares it, so under load the writer
    thread runs one statement per group commit instead of a savepoint and a statement per
    request. The rows of one job succeed or fail together: use it only for rows the service
    builds itself (a prediction log), never for input that may be refused row by row.
    ``durable`` is passed on to :meth:`Store.submit`.

    >>> import tempfile, os
    >>> store = Store(os.path.join(tempfile.mkdtemp(), "b.db")).start()
    >>> log = RowBatcher(store, "INSERT INTO meta (key, value) VALUES (?, ?)")
    >>> log.add([("a", "1"), ("b", "2")]).result()
    2
    >>> store.get_meta()
    {'a': 1, 'b': 2}
    >>> store.close()
    """

    def __init__(self, store: SqlStore, sql: str, durable: bool = True) -> None:
        self.store, self.sql, self.durable = store, sql, durable
        self._lock = threading.Lock()
        self._open: _Batch | None = None  # the batch that later adds join

    def add(self, rows: list[tuple]) -> Future:
        """Queue ``rows``; the returned future (one per caller, so a caller that gives up
        cannot cancel the others) resolves to the batch's row count after their commit."""
        waiter: Future = Future()
        with self._lock:
            if self._open is None:
                batch = _Batch()
                job = self.store.submit(lambda conn: self._insert(batch, conn), self.durable)
                job.add_done_callback(batch.settle)
                self._open = batch
            self._open.rows.extend(rows)
            self._open.waiters.append(waiter)
        return waiter

    def _insert(self, batch: _Batch, conn: Any) -> int:
        with self._lock:  # later adds start the next batch
            if self._open is batch:
                self._open = None
        conn.executemany(self.sql, batch.rows)
        return len(batch.rows)


class _Batch:
    """Rows of one :class:`RowBatcher` job and the futures of the callers waiting on it."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.waiters: list[Future] = []

    def settle(self, job: Future) -> None:
        """Hand the job's outcome (after its commit) to every waiting caller."""
        error = job.exception()
        for waiter in self.waiters:
            try:
                if error is None:
                    waiter.set_result(job.result())
                else:
                    waiter.set_exception(error)
            except InvalidStateError:  # that caller cancelled its wait: nothing to tell it
                pass


class SqlStore(ABC):
    """What the service needs from a database, and how it is written: one writer thread with
    group commit (see the module docstring). The backends fill in connecting, beginning a
    transaction and the clock: :class:`Store` (SQLite, embedded, the default) and
    :class:`adaptloop.serve.postgres.PostgresStore` (PostgreSQL, shared by several processes
    or hosts). Every query below is in the SQL both understand (``?`` parameters; the
    PostgreSQL connection translates them), so both backends run the same statements.

    ``call(fn)`` runs ``fn(connection)`` on the writer thread inside a transaction and returns
    its result once committed; ``submit(fn)`` returns a ``Future`` for the same (await it from
    asyncio with ``asyncio.wrap_future``). An exception in ``fn`` rolls back ``fn``'s changes
    only and is raised to its caller.

    The trainer lease (:meth:`take_lease`, :meth:`renew_lease`, :meth:`release_lease`): one
    row of ``lease`` names the process that may adapt and publish versions, until its expiry
    (the database's clock). While :attr:`fence` holds a holder's name, every write of the
    trainer (checkpoints, decisions, quarantine) first checks, in its own transaction, that
    the row still names it: a trainer whose lease was taken over cannot publish
    (:class:`LeaseLost`).
    """

    backend = ""
    """``"sqlite"`` or ``"postgresql"``."""
    db_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    """The driver's errors (a failed write: 503, nothing acknowledged)."""
    live_types: tuple[type, ...] = _LIVE
    """Driver objects a job must never return (see the module docstring)."""
    prune_beyond = ""
    """``DELETE`` of the predictions beyond the newest ``keep`` (parameters: ``keep``,
    ``learned_seq``): the backends find them through their own index."""
    thread_name = "adaptloop-store"

    def __init__(self, where: str, max_group: int = 256, keep_checkpoints: int = 20) -> None:
        self.where = where
        self.max_group = max_group
        self.keep_checkpoints = keep_checkpoints
        self.write_error: str | None = None  # the last failed write, until one succeeds
        self.fence: str | None = None  # the lease holder this store writes for, if any
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.commits = 0
        # not fsynced per prediction (see the module docstring): a killed process keeps them
        self._prediction_log = RowBatcher(
            self,
            "INSERT INTO predictions (id, created, model_version, features, prediction, proba) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            durable=False,
        )

    # -- what a backend provides -------------------------------------------------------------
    @abstractmethod
    def _open(self) -> Any:
        """Connect (on the writer thread) and create the tables; ``StoreError`` when the
        database cannot be opened."""

    @abstractmethod
    def _begin(self, conn: Any, durable: bool) -> None:
        """Begin the transaction of one group (fsynced at commit when ``durable``)."""

    def _clock(self, conn: Any) -> float:
        """The database's time (Unix seconds): lease expiries are taken on one clock."""
        return time.time()

    def _announce(self, conn: Any, version: int) -> None:
        """Tell followers (at commit) that a checkpoint of ``version`` is stored."""
        return  # by default followers poll (SQLite); PostgreSQL notifies

    def _serialize_feedback(self, conn: Any) -> None:
        """Make ``seq`` order the commit order of feedback (a reader that has seen ``seq``
        must have seen every smaller one); SQLite has one writer at a time anyway."""
        return  # nothing to do for one writer (SQLite); PostgreSQL takes a lock

    def wait_for_checkpoint(self, timeout: float) -> None:
        """Return when a checkpoint may have been stored by another process, or after
        ``timeout`` seconds (the SQLite store polls: it sleeps)."""
        time.sleep(timeout)

    def _lost(self, conn: Any) -> bool:
        """The connection is gone (a restarted server): reconnect before the next group."""
        return False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> SqlStore:
        """Start the writer thread, which opens the database (creating the tables); returns
        once it is open (``StoreError`` when it cannot be opened)."""
        if self._thread is not None:
            return self
        opened: Future = Future()
        self._thread = threading.Thread(
            target=self._run, args=(opened,), name=self.thread_name, daemon=True
        )
        self._thread.start()
        try:
            opened.result()
        except BaseException:
            self._thread.join()
            self._thread = None
            raise
        return self

    def close(self) -> None:
        """Finish the queued jobs, stop the writer thread and close the database."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    @property
    def running(self) -> bool:
        """The writer thread is alive and accepting jobs."""
        return self._thread is not None and self._thread.is_alive() and not self._closed

    # -- jobs --------------------------------------------------------------------------------
    def submit(self, fn: Callable[[Any], T], durable: bool = True) -> Future:
        """Queue ``fn(connection)``; the future resolves after the commit that includes it
        (fsynced unless ``durable=False`` and no durable job shares the commit)."""
        if self._thread is None or self._closed:
            raise StoreError("the store is not running")
        future: Future = Future()
        self._queue.put((fn, future, durable))
        return future

    def call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` in a committed transaction and return its result."""
        return self.submit(fn).result()

    def _run(self, opened: Future) -> None:
        try:
            conn = self._open()
        except BaseException as error:
            opened.set_exception(error)
            return
        opened.set_result(None)
        stop = False
        while not stop:
            jobs = [self._queue.get()]
            while len(jobs) < self.max_group:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in jobs:
                stop = True
                jobs = [job for job in jobs if job is not _STOP]
            if not jobs:
                continue
            if self._lost(conn):
                with contextlib.suppress(*self.db_errors):
                    conn.close()
                try:
                    conn = self._open()
                except StoreError as error:  # still down: this group fails, the next retries
                    self._fail(jobs, str(error))
                    continue
            self._run_group(conn, jobs)
        conn.close()

    def _fail(self, jobs: list, error: str) -> None:
        self.write_error = error
        failure = StoreError(f"{self.where}: write failed: {error}")
        for _, future, _ in jobs:
            if future.set_running_or_notify_cancel():
                future.set_exception(failure)

    def _run_group(self, conn: Any, jobs: list) -> None:
        outcomes: list[tuple[Future, bool, Any]] = []
        group_error: str | None = None
        try:
            self._begin(conn, any(durable for *_, durable in jobs))
            for fn, future, _ in jobs:
                if not future.set_running_or_notify_cancel():
                    continue  # its caller went away before it ran: nothing was acknowledged
                conn.execute("SAVEPOINT job")
                try:
                    result = fn(conn)
                    _refuse_live(result, self.live_types)
                except BaseException as error:  # refused job: undo its changes only
                    _clear_frames(error)  # cursors held by the job's frames die here
                    if isinstance(error, self.db_errors):  # a full disk, an I/O error: 503
                        group_error = str(error)
                        error = StoreError(f"{self.where}: write failed: {error}")
                    result = None
                    conn.execute("ROLLBACK TO SAVEPOINT job")
                    conn.execute("RELEASE SAVEPOINT job")
                    outcomes.append((future, False, error))
                else:
                    conn.execute("RELEASE SAVEPOINT job")
                    outcomes.append((future, True, result))
            conn.execute("COMMIT")
            self.commits += 1
            self.write_error = group_error
        except self.db_errors as error:  # the commit failed: nothing is acknowledged
            if conn.in_transaction:
                with contextlib.suppress(*self.db_errors):  # it may have rolled back itself
                    conn.execute("ROLLBACK")
            self.write_error = str(error)
            failure = StoreError(f"{self.where}: write failed: {error}")
            outcomes = [(future, False, failure) for _, future, _ in jobs if not future.cancelled()]
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    # -- the trainer lease -------------------------------------------------------------------
    def take_lease(self, holder: str, seconds: float, force: bool = False) -> bool:
        """Take the trainer lease for ``seconds`` if it is free, expired or already
        ``holder``'s (always with ``force``); True when ``holder`` holds it now."""

        def write(conn: Any) -> bool:
            now = self._clock(conn)
            conn.execute(
                "INSERT INTO lease (name, holder, expires) VALUES ('trainer', ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires = excluded.expires "
                "WHERE lease.holder = excluded.holder OR lease.expires < ? OR ?",
                (holder, now + seconds, now, bool(force)),
            )
            return _lease_holder(conn) == holder

        return self.call(write)

    def try_lease(self, holder: str, seconds: float) -> bool:
        """One attempt to take the trainer lease (:meth:`take_lease`; the SQLite store takes
        its lock file first)."""
        return self.take_lease(holder, seconds)

    def renew_lease(self, holder: str, seconds: float) -> bool:
        """Extend ``holder``'s lease by ``seconds`` from now; False when another process
        holds it (it expired and was taken over)."""

        def write(conn: Any) -> bool:
            expires = self._clock(conn) + seconds
            return (
                conn.execute(
                    "UPDATE lease SET expires = ? WHERE name = 'trainer' AND holder = ?",
                    (expires, holder),
                ).rowcount
                == 1
            )

        return self.call(write)

    def release_lease(self, holder: str) -> None:
        """End ``holder``'s lease now (a clean shutdown: a standby takes over at once)."""
        self.call(
            lambda conn: (
                conn.execute(
                    "UPDATE lease SET expires = 0 WHERE name = 'trainer' AND holder = ?", (holder,)
                ).rowcount
            )
        )

    def lease(self) -> dict[str, Any] | None:
        """The lease row: ``holder``, ``expires`` and the database's time ``now`` (None when
        no trainer ever held it)."""

        def read(conn: Any) -> dict[str, Any] | None:
            rows = _dicts(conn.execute("SELECT holder, expires FROM lease WHERE name = 'trainer'"))
            return {**rows[0], "now": self._clock(conn)} if rows else None

        return self.call(read)

    def _check_fence(self, conn: Any) -> None:
        """In a trainer's write: :class:`LeaseLost` unless the lease still names
        :attr:`fence`."""
        if self.fence is not None and _lease_holder(conn) != self.fence:
            raise LeaseLost(
                f"{self.fence} no longer holds the trainer lease: nothing was written", "lease"
            )

    # -- what the service stores (each runs on the writer thread) ------------------------------
    def get_meta(self) -> dict[str, Any]:
        """Everything in ``meta``, JSON-decoded."""
        return self.call(_select_meta)

    def set_meta(self, values: dict[str, Any]) -> None:
        """Insert or replace ``meta`` keys (values are JSON-encoded)."""
        self.call(lambda conn: _write_meta(conn, values))

    def log_predictions(
        self,
        ids: list[str],
        version: int,
        X: np.ndarray,
        pred: np.ndarray,
        proba: np.ndarray | None,
    ) -> Future:
        """Log served predictions: ``ids[i]`` for row ``X[i]``, predicted ``pred[i]`` (class code
        or value) with probabilities ``proba[i]`` by model ``version``. The future resolves
        once they are written (not fsynced: see the module docstring); the rows of concurrent
        callers share one insert."""
        now = time.time()
        rows = [
            (
                ids[i],
                now,
                int(version),
                X[i].tobytes(),
                float(pred[i]),
                None if proba is None else proba[i].astype("float32").tobytes(),
            )
            for i in range(len(ids))
        ]
        return self._prediction_log.add(rows)

    def add_feedback(self, items: list[NewFeedback]) -> Future:
        """Store labels in the order given, all or none: the future resolves to their ``seq``
        numbers once fsynced, or raises :class:`UnknownPrediction`,
        :class:`DuplicateFeedback` naming ``feedback[i].prediction_id`` or
        :class:`IdempotencyConflict` naming ``feedback[i].key`` (nothing stored). An item
        whose idempotency ``key`` is already stored with the same content is not stored
        again: its ``seq`` is the stored one (a retry after a crash is learned once). Two
        processes storing labels for the same prediction (or under the same key) at once:
        one stores, the other is answered as a duplicate (or with the stored ``seq``)."""
        now = time.time()

        def write(conn: Any) -> list[int]:
            self._serialize_feedback(conn)
            seqs = []
            for i, item in enumerate(items):
                if item.key is not None:
                    seq = _stored_key(conn, item, i)
                    if seq is not None:
                        seqs.append(seq)
                        continue
                features = item.features
                if item.prediction_id is not None:
                    features = _unlabelled_prediction(conn, item.prediction_id, i)
                row = conn.execute(
                    "INSERT INTO feedback (prediction_id, created, features, label, key) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING seq",
                    (item.prediction_id, now, features, item.label, item.key),
                ).fetchone()
                if row is None:  # another writer stored the same prediction id or key first
                    seq = None if item.key is None else _stored_key(conn, item, i)
                    if seq is None:
                        raise DuplicateFeedback(
                            f"feedback[{i}].prediction_id",
                            f"feedback for prediction id {item.prediction_id!r} was "
                            "already received",
                        )
                    seqs.append(seq)
                    continue
                seqs.append(int(row["seq"]))
            return seqs

        return self.submit(write)

    def feedback_after(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` feedback rows with ``seq`` greater than ``seq``, joined with the
        stored prediction: keys ``seq``, ``features``, ``label``, ``prediction`` and ``proba``
        (the last two are None for records sent with their label)."""
        return self.call(
            lambda conn: _dicts(
                conn.execute(
                    "SELECT f.seq, f.features, f.label, p.prediction, p.proba FROM feedback f "
                    "LEFT JOIN predictions p ON p.id = f.prediction_id "
                    "WHERE f.seq > ? ORDER BY f.seq LIMIT ?",
                    (seq, limit),
                )
            )
        )

    def add_checkpoint(
        self,
        version: int,
        kind: str,
        learned_seq: int,
        state: Any,
        meta: dict[str, Any],
        meta_values: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Pack ``state`` (arrays + JSON: :func:`adaptloop.serve.state.pack`, which raises
        ``StateEncodingError`` for a value it cannot store) and store it with its checksum;
        with ``meta_values``, set those ``meta`` keys in the same transaction. Then apply
        the retention rule (:meth:`prune_checkpoints`) and tell followers (PostgreSQL:
        ``NOTIFY``). Returns the checkpoint's :attr:`Checkpoint.info`."""
        blob = pack(state)
        sha256 = checksum(blob)

        def write(conn: Any) -> int:
            self._check_fence(conn)
            _write_meta(conn, meta_values or {})
            checkpoint_id = conn.execute(
                "INSERT INTO checkpoints (created, version, kind, learned_seq, sha256, "
                "meta, state) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (time.time(), version, kind, learned_seq, sha256, json.dumps(meta), blob),
            ).fetchone()["id"]
            _prune_checkpoints(conn, self.keep_checkpoints)
            self._announce(conn, version)
            return int(checkpoint_id)

        checkpoint_id = self.call(write)
        return Checkpoint(checkpoint_id, version, kind, learned_seq, sha256, meta, b"").info

    def prune_checkpoints(self) -> int:
        """Delete checkpoints outside the retention rule: kept are the newest
        ``keep_checkpoints``, the newest of every model version (each version ever served can
        be rolled back to and exported), and every ``initial`` and ``snapshot`` (pinned by the
        operator). Returns how many were deleted."""
        return self.call(lambda conn: _prune_checkpoints(conn, self.keep_checkpoints))

    def checkpoints(self, version: int | None = None) -> list[Checkpoint]:
        """Checkpoints newest first (only those of ``version`` when given), without their
        states: each row's state is read when it is used."""
        return self.call(lambda conn: _select_checkpoints(conn, version, self._fetcher))

    def newest_checkpoint(self) -> tuple[int, int] | None:
        """``(id, version)`` of the newest checkpoint (None when there is none): what a
        follower compares with what it serves."""

        def read(conn: Any) -> tuple[int, int] | None:
            row = conn.execute(
                "SELECT id, version FROM checkpoints ORDER BY id DESC LIMIT 1"
            ).fetchone()
            return None if row is None else (int(row["id"]), int(row["version"]))

        return self.call(read)

    def _fetcher(self, checkpoint_id: int) -> Callable[[], bytes]:
        return lambda: self.call(lambda conn: _select_state(conn, checkpoint_id))

    def legacy_checkpoints(self) -> int:
        """How many checkpoint rows hold a legacy pickled state."""
        return self.call(_count_legacy)

    def convert_legacy_checkpoints(self, convert: Callable[[Any], Any]) -> int:
        """Unpickle every legacy row (the operator trusts them), pass the state through
        ``convert`` (to plain values) and store it packed, one row at a time; returns how
        many were converted. Only for ``--trust-pickle``: unpickling runs code."""
        ids = self.call(
            lambda conn: [
                row["id"]
                for row in conn.execute(
                    f"SELECT id FROM checkpoints WHERE {_NOT_PACKED}", (STATE_MAGIC,)
                ).fetchall()
            ]
        )
        for checkpoint_id in ids:
            blob = self.call(lambda conn, i=checkpoint_id: _select_state(conn, i))
            packed = pack(convert(pickle.loads(blob)))  # noqa: S301 - the operator trusts it

            def write(conn: Any, i: int = checkpoint_id, b: bytes = packed) -> None:
                conn.execute(
                    "UPDATE checkpoints SET state = ?, sha256 = ? WHERE id = ?", (b, checksum(b), i)
                )

            self.call(write)
        return len(ids)

    def prune_predictions(self, older_than: float, keep: int, learned_seq: int) -> int:
        """Delete logged predictions created before ``older_than`` (a Unix time) or beyond
        the newest ``keep``, except those whose feedback is stored but not yet learned
        (``seq > learned_seq``); returns how many were deleted."""

        def write(conn: Any) -> int:
            # two index-driven deletes (the backend's, then the index on created): no full
            # scan of a large table on the writer thread, whose commits predictions wait for
            deleted = conn.execute(self.prune_beyond, (keep, learned_seq)).rowcount
            return (
                deleted
                + conn.execute(
                    f"DELETE FROM predictions WHERE created < ? AND id NOT IN ({PENDING})",
                    (older_than, learned_seq),
                ).rowcount
            )

        return self.call(write)

    def quarantine(self, first_seq: int, last_seq: int, error: str) -> None:
        """Set aside the feedback micro-batch ``first_seq..last_seq`` with ``error``."""
        row = (first_seq, last_seq, time.time(), error)

        def write(conn: Any) -> int:
            self._check_fence(conn)
            return conn.execute(
                "INSERT INTO quarantine (first_seq, last_seq, created, error) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                row,
            ).rowcount

        self.call(write)

    def quarantined(self) -> list[dict[str, Any]]:
        """Every quarantined micro-batch, oldest first: ``first_seq``, ``last_seq``,
        ``created``, ``error``."""
        return self.call(
            lambda conn: _dicts(conn.execute("SELECT * FROM quarantine ORDER BY first_seq"))
        )

    def check_writable(self) -> None:
        """``StoreError`` when the last write failed (a full disk, an I/O error) and none has
        succeeded since, or when a probe row cannot be written now (it is rolled back)."""
        if self.write_error is not None:
            raise StoreError(f"the last write failed: {self.write_error}")

        def probe(conn: Any) -> None:
            _write_meta(conn, {"_probe": 0})
            raise _ProbeDone

        try:
            self.call(probe)
        except _ProbeDone:
            return

    def count(self, table: str) -> int:
        """Rows in ``table`` (one of the store's tables)."""
        if table not in ("predictions", "feedback", "checkpoints", "decisions", "quarantine"):
            raise ValueError(f"unknown table {table!r}")
        return self.call(
            lambda conn: conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]
        )

    def add_decision(self, at_seq: int, record: dict[str, Any]) -> None:
        """Record an update-gate decision (once per feedback position: replays do not repeat)."""
        row = (at_seq, time.time(), json.dumps(record))

        def write(conn: Any) -> None:
            self._check_fence(conn)
            conn.execute(
                "INSERT INTO decisions (at_seq, created, record) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                row,
            )

        self.call(write)

    def decisions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The last ``limit`` gate decisions, oldest first."""
        rows = self.call(
            lambda conn: _dicts(
                conn.execute("SELECT record FROM decisions ORDER BY at_seq DESC LIMIT ?", (limit,))
            )
        )
        return [json.loads(row["record"]) for row in reversed(rows)]


class Store(SqlStore):
    """The SQLite store (the embedded default): a database file in WAL mode, written by one
    thread with group commit (see the module docstring). With ``exclusive`` (the default),
    :meth:`start` takes the database's lock file: one server per database."""

    backend = "sqlite"
    prune_beyond = (
        "DELETE FROM predictions WHERE rowid <= "
        "(SELECT coalesce(max(rowid), 0) FROM predictions) - ? "
        f"AND id NOT IN ({PENDING})"
    )

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        max_group: int = 256,
        checkpoint_interval: float = 1.0,
        restart_pages: int = 4096,
        keep_checkpoints: int = 20,
        exclusive: bool = True,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        super().__init__(str(path), max_group, keep_checkpoints)
        self.path = Path(path)
        self.wal = WalCheckpointer(self.path, checkpoint_interval, restart_pages)
        self.synchronous = synchronous
        self.exclusive = exclusive
        self._lock_file: int | None = None
        self._level = synchronous  # the connection's current synchronous setting

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Store:
        """Take the lock (when ``exclusive``), start the writer thread, which opens the
        database (creating the tables); returns once it is open (``StoreError`` when it
        cannot be opened, or another server holds the lock)."""
        if self._thread is not None:
            return self
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a database file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"{self.path}: cannot create its folder: {error.strerror}") from None
        new_lock = self.exclusive and not self.lock_path.exists()
        if self.exclusive:
            self.lock()
        try:
            super().start()
        except BaseException:
            if new_lock:  # still held by us: no one else can be using it
                self.lock_path.unlink(missing_ok=True)
            self._unlock()
            raise
        self.wal.start()
        return self

    @property
    def lock_path(self) -> Path:
        """The lock file beside the database."""
        return self.path.with_name(self.path.name + ".lock")

    def lock(self, wait: float = 0.0) -> None:
        """Take the database's exclusive lock, trying for up to ``wait`` seconds
        (``StoreError`` when another server holds it). The kernel drops it when the process
        dies, so it is the trainer lease of SQLite (one host): a standby takes it at once."""
        if fcntl is None or self._lock_file is not None:  # pragma: no cover
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(
                f"{self.lock_path}: cannot create the lock: {error.strerror}"
            ) from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() < deadline:
                    time.sleep(min(0.1, wait))
                    continue
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise StoreError(
                    f"{self.path} is in use by another server (pid {holder}): "
                    "one server per database"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_file = fd

    def try_lease(self, holder: str, seconds: float) -> bool:
        """The lock file is the lease on SQLite (one host; the kernel drops it with its
        process): whoever holds it writes the lease row (for the fence and for readers)."""
        try:
            self.lock()
        except StoreError:
            return False
        return self.take_lease(holder, seconds, force=True)

    def _unlock(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)  # closing drops the flock
            self._lock_file = None

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, factory=_Connection)
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: cannot open: {error}") from None
        try:
            conn.execute("PRAGMA busy_timeout=5000")  # other processes (predictors) write too
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._level = self.synchronous
            conn.execute("PRAGMA wal_autocheckpoint=0")  # self.wal checkpoints, off this thread
            conn.execute(f"PRAGMA journal_size_limit={64 * 2**20}")  # the log file after a restart
            conn.executescript(SCHEMA)
            for table, column, statement in MIGRATIONS:
                columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
                if column not in columns:
                    conn.execute(statement)
            conn.executescript(INDEXES)
            conn.row_factory = sqlite3.Row  # every query reads its columns by name
        except sqlite3.DatabaseError as error:
            conn.close()
            raise StoreError(f"{self.path}: {error}") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _begin(self, conn: sqlite3.Connection, durable: bool) -> None:
        level = self.synchronous if durable else "NORMAL"
        if level != self._level:  # a pragma between transactions: this commit's fsync
            conn.execute(f"PRAGMA synchronous={level}")
            self._level = level
        conn.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        """Finish the queued jobs, stop the writer thread and close the database."""
        if self._thread is None or self._closed:
            return
        self.wal.close()
        super().close()
        self._unlock()


def redact(url: str | Path) -> str:
    """``url`` without its password (for messages).

    >>> redact("postgresql://u:pw@h:5/d?sslmode=require")
    'postgresql://u:***@h:5/d?sslmode=require'
    """
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(url))


def is_database_url(db: str | Path) -> bool:
    """``db`` names a PostgreSQL database (a ``postgresql://`` URL), not a SQLite file.

    >>> is_database_url("postgresql://app@db.internal/adaptloop"), is_database_url("a.db")
    (True, False)
    """
    return str(db).startswith(("postgresql://", "postgres://"))


def open_store(db: str | Path, keep_checkpoints: int = 20, exclusive: bool = True) -> SqlStore:
    """The store of ``db`` (not started): :class:`PostgresStore
    <adaptloop.serve.postgres.PostgresStore>` for a ``postgresql://`` URL (the ``postgres``
    extra), else the SQLite :class:`Store` of that file (``exclusive``: with its lock).

    >>> import tempfile, os
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "o.db")).start()
    >>> store.backend, store.count("feedback")
    ('sqlite', 0)
    >>> store.close()
    """
    if is_database_url(db):
        from adaptloop.serve.postgres import PostgresStore

        return PostgresStore(str(db), keep_checkpoints=keep_checkpoints)
    return Store(db, keep_checkpoints=keep_checkpoints, exclusive=exclusive)


class _ProbeDone(Exception):
    """Rolls back :meth:`Store.check_writable`'s probe write."""


@dataclass(frozen=True)
class NewFeedback:
    """A label to store: for the prediction ``prediction_id`` (its features are the logged
    ones) or, with ``prediction_id`` None, for the record ``features`` (float32 bytes).
    ``label`` is the class code or the regression value; ``key`` an idempotency key."""

    prediction_id: str | None
    features: bytes | None
    label: float
    key: str | None = None


class ReadOnlyStore:
    """A service database opened read-only: a running service may keep writing it.

    ``StoreError`` (field ``db``) when ``path`` is missing or not a service database.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "r.db")
    >>> store = Store(path).start(); store.set_meta({"learner": "lr"}); store.close()
    >>> with ReadOnlyStore(path) as db:
    ...     db.get_meta(), db.checkpoints()
    ({'learner': 'lr'}, [])
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"no such database: {self.path}")
        try:
            self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: {error}") from None
        self._conn.row_factory = sqlite3.Row
        if not self._read(_select_meta):
            self.close()
            raise StoreError(f"{self.path} is not an adaptloop database (no meta)")

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return query(self._conn)
        except sqlite3.Error as error:
            self.close()
            raise StoreError(f"{self.path} is not an adaptloop database ({error})") from None

    def get_meta(self) -> dict[str, Any]:
        """Everything in ``meta``, JSON-decoded."""
        return self._read(_select_meta)

    def checkpoints(self, version: int | None = None) -> list[Checkpoint]:
        """Checkpoints newest first (only those of ``version`` when given); each row's state
        is read when it is used."""
        return self._read(lambda conn: _select_checkpoints(conn, version, self._fetcher))

    def _fetcher(self, checkpoint_id: int) -> Callable[[], bytes]:
        return lambda: self._read(lambda conn: _select_state(conn, checkpoint_id))

    def legacy_checkpoints(self) -> int:
        """How many checkpoint rows hold a legacy pickled state."""
        return self._read(_count_legacy)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ReadOnlyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the queries (on a connection whose rows are sqlite3.Row) ---------------------------------
def _dicts(cursor: Any) -> list[dict[str, Any]]:
    """The cursor's rows as dicts by column name (plain values: they may leave the thread)."""
    return [dict(row) for row in cursor.fetchall()]


def _select_meta(conn: Any) -> dict[str, Any]:
    rows = conn.execute("SELECT key, value FROM meta").fetchall()
    return {row["key"]: json.loads(row["value"]) for row in rows}


def _write_meta(conn: Any, values: dict[str, Any]) -> None:
    rows = [(key, json.dumps(value)) for key, value in values.items()]
    if rows:
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            rows,
        )


def _select_checkpoints(
    conn: Any, version: int | None, fetcher: Callable[[int], Callable[[], bytes]]
) -> list[Checkpoint]:
    sql = "SELECT id, version, kind, learned_seq, sha256, meta FROM checkpoints"
    args: tuple = ()
    if version is not None:
        sql, args = sql + " WHERE version = ?", (int(version),)
    return [
        Checkpoint(
            id=row["id"],
            version=row["version"],
            kind=row["kind"],
            learned_seq=row["learned_seq"],
            sha256=row["sha256"],
            meta=json.loads(row["meta"]),
            fetch=fetcher(row["id"]),
        )
        for row in conn.execute(sql + " ORDER BY id DESC", args).fetchall()
    ]


def _select_state(conn: Any, checkpoint_id: int) -> bytes:
    row = conn.execute("SELECT state FROM checkpoints WHERE id = ?", (checkpoint_id,)).fetchone()
    if row is None:
        raise ValueError(f"checkpoint {checkpoint_id}: deleted")
    return bytes(row["state"])


def _count_legacy(conn: Any) -> int:
    return conn.execute(
        f"SELECT count(*) AS n FROM checkpoints WHERE {_NOT_PACKED}", (STATE_MAGIC,)
    ).fetchone()["n"]


def _lease_holder(conn: Any) -> str | None:
    row = conn.execute("SELECT holder FROM lease WHERE name = 'trainer'").fetchone()
    return None if row is None else row["holder"]


def _prune_checkpoints(conn: Any, keep: int) -> int:
    return conn.execute(
        "DELETE FROM checkpoints WHERE kind NOT IN ('initial', 'snapshot') "
        "AND id NOT IN (SELECT id FROM checkpoints ORDER BY id DESC LIMIT ?) "
        "AND id NOT IN (SELECT max(id) FROM checkpoints GROUP BY version)",
        (keep,),
    ).rowcount


def _stored_key(conn: Any, item: NewFeedback, index: int) -> int | None:
    """The ``seq`` of the feedback stored under ``item.key`` (None when there is none);
    :class:`IdempotencyConflict` when it was stored with other content."""
    row = conn.execute(
        "SELECT seq, prediction_id, features, label FROM feedback WHERE key = ?", (item.key,)
    ).fetchone()
    if row is None:
        return None
    same = row["prediction_id"] == item.prediction_id and row["label"] == item.label
    if same and item.prediction_id is None:
        same = bytes(row["features"]) == item.features
    if not same:
        raise IdempotencyConflict(
            f"feedback[{index}].key",
            f"idempotency key {item.key!r} was already used for other feedback",
        )
    return int(row["seq"])


def _unlabelled_prediction(conn: Any, prediction_id: str, index: int) -> bytes:
    """The logged features of ``prediction_id``, which must have no label yet."""
    field = f"feedback[{index}].prediction_id"
    row = conn.execute("SELECT features FROM predictions WHERE id = ?", (prediction_id,)).fetchone()
    if row is None:
        raise UnknownPrediction(field, f"unknown prediction id {prediction_id!r}")
    if conn.execute("SELECT 1 FROM feedback WHERE prediction_id = ?", (prediction_id,)).fetchone():
        raise DuplicateFeedback(
            field, f"feedback for prediction id {prediction_id!r} was already received"
        )
    return row["features"]
