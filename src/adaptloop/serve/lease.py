"""The trainer lease: exactly one process per store adapts the model and publishes versions.

A :class:`TrainerLease` takes the ``lease`` row of the store for its process (a holder name:
host, pid and a random suffix) and renews it every third of ``seconds`` on a thread of its
own. Another trainer waits (a *standby*) until the row expires -- ``seconds`` after the last
renewal, on the database's clock -- and takes it over. On SQLite (one host) the database's lock
file decides first: the kernel drops it when its process dies, so a standby takes over at once
(:meth:`adaptloop.serve.store.Store.lock`). While it holds the lease, the store's writes of
the trainer are fenced (:attr:`adaptloop.serve.store.SqlStore.fence`): should the lease expire
(a paused process) and a standby take it over, the old trainer's next checkpoint is refused
(:class:`~adaptloop.serve.errors.LeaseLost`) and its ``on_lost`` callback stops it.

>>> import tempfile, os
>>> from adaptloop.serve.store import Store
>>> store = Store(os.path.join(tempfile.mkdtemp(), "l.db"), exclusive=False).start()
>>> lease = TrainerLease(store, seconds=5.0)
>>> lease.take(wait=0.0)
>>> store.lease()["holder"] == lease.holder, store.fence == lease.holder
(True, True)
>>> lease.stop(); store.lease()["expires"]
0.0
>>> store.close()
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from adaptloop.serve.errors import StoreError
from adaptloop.serve.store import SqlStore

log = logging.getLogger("adaptloop.serve")


class TrainerLease:
    """The lease of ``store`` for this process (see the module docstring)."""

    def __init__(self, store: SqlStore, seconds: float = 5.0) -> None:
        self.store, self.seconds = store, float(seconds)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lost: str | None = None
        self.on_lost: Callable[[str], None] | None = None
        self.taken_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, wait: float | None = 0.0) -> None:
        """Take the lease, trying for up to ``wait`` seconds (None: until it is taken);
        ``StoreError`` (field ``lease``) naming the holder when it is not."""
        deadline = None if wait is None else time.monotonic() + wait
        while not self.store.try_lease(self.holder, self.seconds):
            if deadline is not None and time.monotonic() >= deadline:
                current = self.store.lease() or {}
                left = max(0.0, current.get("expires", 0.0) - current.get("now", 0.0))
                raise StoreError(
                    f"the trainer lease of {self.store.where} is held by "
                    f"{current.get('holder', 'another server')} (expires in {left:.1f} s): "
                    "one trainer per database; start with --role trainer to wait as a standby",
                    "lease",
                )
            time.sleep(min(0.1, self.seconds / 10))
        self.store.fence = self.holder
        self.taken_at = time.time()

    def start(self) -> TrainerLease:
        """Renew the lease every third of ``seconds`` on a thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._renew, name="adaptloop-lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self.seconds / 3):
            try:
                if self.store.renew_lease(self.holder, self.seconds):
                    renewed = time.monotonic()
                    continue
                reason = "another trainer took the lease over"
            except StoreError as error:  # the database is away: the lease runs out meanwhile
                if time.monotonic() - renewed < self.seconds:
                    continue
                reason = f"the lease could not be renewed: {error.detail}"
            self.lost = reason
            log.error("trainer lease lost: %s", reason)
            if self.on_lost is not None:
                self.on_lost(reason)
            return

    def stop(self, release: bool = True) -> None:
        """Stop renewing; with ``release`` (and the lease still held) end it now, so that a
        standby takes over at once."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if release and self.lost is None and self.store.running:
            try:
                self.store.release_lease(self.holder)
            except StoreError as error:
                log.warning("could not release the trainer lease: %s", error.detail)
