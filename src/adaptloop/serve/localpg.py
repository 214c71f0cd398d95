"""A throwaway PostgreSQL server on this machine: for trying roles out, tests and benchmarks.

:class:`LocalPostgres` runs ``initdb`` into a temporary folder, starts ``postgres`` on a free
loopback port (its unix socket in that folder too) with trust authentication, creates
databases on request (:meth:`LocalPostgres.database` returns a ``postgresql://`` URL for
``adaptloop serve --db``) and, on :meth:`LocalPostgres.stop`, stops the server and deletes the
folder. The binaries are found on ``PATH``, in ``$PG_BIN``, or in Debian's
``/usr/lib/postgresql/<version>/bin`` (``apt-get install postgresql``). PostgreSQL refuses to
run as root: as root the server runs as the ``postgres`` user (``runuser``).

Nothing here is for production: the server has no password and lives as long as the object.

>>> LocalPostgres.binaries() is None or LocalPostgres.binaries().name == "bin"
True
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (no binaries, or they fail)."""


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalPostgres:
    """A PostgreSQL server in a temporary folder (see the module docstring); a context
    manager: ``with LocalPostgres() as pg: url = pg.database()``."""

    def __init__(self) -> None:
        self.bin = self.binaries()
        if self.bin is None:
            raise PostgresUnavailable(
                "no PostgreSQL binaries (initdb, pg_ctl): install Debian's 'postgresql' "
                "package or put them on PATH (or in $PG_BIN)"
            )
        self.port = 0
        self.folder: Path | None = None

    @staticmethod
    def binaries() -> Path | None:
        """The folder holding ``initdb`` and ``pg_ctl`` (None when there is none)."""
        candidates = [os.environ.get("PG_BIN", "")]
        on_path = shutil.which("pg_ctl")
        candidates.append(str(Path(on_path).parent) if on_path else "")
        candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
        for folder in filter(None, candidates):
            if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
                return Path(folder)
        return None

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # postgres refuses root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{args[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
            )

    def start(self) -> LocalPostgres:
        """initdb, then start the server on a free port; waits until it accepts connections."""
        self.folder = Path(tempfile.mkdtemp(prefix="adaptloop-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        data = self.folder / "data"
        try:
            self._run(
                "initdb",
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            )
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                "-c max_connections=200 -c shared_buffers=64MB"
            )
            self._run(
                "pg_ctl",
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(self.folder / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            )
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
            raise
        return self

    @property
    def url(self) -> str:
        """The URL of the ``postgres`` database (for administration)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database(self, name: str | None = None) -> str:
        """Create a database (``name``, default a fresh one) and return its URL."""
        import psycopg

        name = name or f"adaptloop_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is kept) and delete its folder."""
        if self.folder is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
