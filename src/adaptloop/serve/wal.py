"""WAL checkpoints on their own thread, off the commit path of the store's writer.

SQLite copies the write-ahead log back into the database file in a *checkpoint*. By default
the commit that takes the log past 1,000 pages runs it, inline: a page copy and two fsyncs,
tens to hundreds of milliseconds during which every request waiting on that commit waits too
(with a one-record prediction log, every two thousand predictions or so). The writer therefore
turns automatic checkpoints off (``PRAGMA wal_autocheckpoint=0``) and this thread runs a
``PASSIVE`` checkpoint every ``interval`` seconds on its own connection: a passive checkpoint
takes no lock the writer needs, so commits go on while it copies, and SQLite's connection calls
release the GIL, so the event loop goes on too. Under sustained writes a passive checkpoint never
finds the log fully copied (commits append while it copies), so the log would grow without end:
once it holds more than ``restart_pages`` frames, a ``RESTART`` checkpoint follows the passive
one. It waits for the writer's lock and copies what the passive one left (one interval's
commits), so the writer pauses for that copy and an fsync, once per ``restart_pages`` frames
instead of once per 1,000 with a full copy; then the log starts again from its beginning. The
last connection to close checkpoints what is left.

>>> import sqlite3, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "w.db")
>>> db = sqlite3.connect(path, isolation_level=None)
>>> db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
'wal'
>>> _ = db.execute("CREATE TABLE t (x)")
>>> checkpointer = WalCheckpointer(path, interval=60).start()
>>> busy, in_log, copied = checkpointer.checkpoint()
>>> (busy, in_log == copied)
(0, True)
>>> checkpointer.close(); db.close()
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path

log = logging.getLogger(__name__)


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` every ``interval`` seconds on a
    thread of its own, and a ``RESTART`` after it when the log holds more than
    ``restart_pages`` frames (see the module docstring); ``checkpoint()`` runs one now."""

    def __init__(self, path: str | Path, interval: float = 1.0, restart_pages: int = 4096) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        if not restart_pages > 0:
            raise ValueError(f"restart_pages must be positive, got {restart_pages!r}")
        self.path, self.interval, self.restart_pages = Path(path), interval, restart_pages
        self._stop = threading.Event()
        self._requests: list[Future] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0
        self.restarts = 0

    def start(self) -> WalCheckpointer:
        """Start the thread (it opens its own connection)."""
        self._thread = threading.Thread(target=self._run, name="adaptloop-wal", daemon=True)
        self._thread.start()
        return self

    def checkpoint(self) -> tuple[int, int, int]:
        """Run a passive checkpoint now (on the thread): ``(busy, frames in the log, frames
        copied)`` as SQLite reports them."""
        if self._thread is None or self._stop.is_set():
            raise RuntimeError("the checkpointer is not running")
        request: Future = Future()
        with self._lock:
            self._requests.append(request)
        self._wake.set()
        return request.result()

    def close(self) -> None:
        """Stop the thread and close its connection."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")  # a RESTART waits for the writer's lock
        try:
            while True:
                self._wake.wait(self.interval)
                self._wake.clear()
                with self._lock:
                    requests, self._requests = self._requests, []
                if self._stop.is_set():
                    for request in requests:
                        request.set_exception(RuntimeError("the checkpointer stopped"))
                    return
                try:
                    result = tuple(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
                    self.checkpoints += 1
                    if result[1] > self.restart_pages:
                        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                        self.restarts += 1
                except sqlite3.Error as error:  # try again next time; the log only grows
                    log.warning("%s: WAL checkpoint failed: %s", self.path, error)
                    for request in requests:
                        request.set_exception(error)
                    continue
                for request in requests:
                    request.set_result(result)
        finally:
            conn.close()
