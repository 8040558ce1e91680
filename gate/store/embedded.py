"""The embedded Postgres: a real PostgreSQL (the ``pgserver`` wheel) in ``GATE_DATA_DIR/postgres``.

Used when ``DATABASE_URL`` is unset, so ``upload-gate serve`` works with one command. The server listens
on a Unix socket inside its data directory only (no TCP port), with trust auth: whoever can reach that
directory can connect, which is why it stays 0700.

Running as root, pgserver runs Postgres as a system user ``pgserver`` (created with useradd if missing),
chowns the data directory to it and adds o+rx to every parent directory so that user can reach it.
As a normal user it runs as that user. Several processes (the gate, ``upload-gate decisions``) may share
one server: pgserver keeps a list of handle pids in the data directory and the last one out stops it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DATABASE = "upload_gate"


class EmbeddedPostgresError(OSError):
    """The embedded server would not start (an OSError: the gate reports it as "cannot start")."""


def _pgserver() -> Any:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (services, CI); pgserver then
    # uses /tmp/runtime-$UID for its lock file, which is fine for us.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # deferred: only the embedded mode pays for it

    return pgserver


class EmbeddedPostgres:
    """One handle on the embedded server of a data directory. ``start`` and ``stop`` block: run them in a
    thread from async code."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").absolute()
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and make sure the gate's database exists; returns its DSN."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = _pgserver().get_server(self.pgdata, cleanup_mode="stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedPostgresError(
                f"embedded Postgres in {self.pgdata} did not start; see {self.pgdata / 'log'}"
            ) from exc
        info = self._server.get_postmaster_info()
        if info.socket_dir is not None and Path(info.socket_dir) != self.pgdata:
            # pgserver falls back to a shared runtime dir (mode 0777) when the path is too long for a socket.
            log.warning(
                "embedded Postgres socket is in %s (data dir path too long): local users can reach it; "
                "use a shorter GATE_DATA_DIR",
                info.socket_dir,
            )
        self._ensure_database()
        return str(self._server.get_uri(DATABASE))

    def _ensure_database(self) -> None:
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';"  # noqa: S608 - a constant
        if "(1 row)" not in self._server.psql(exists):
            # Another process may create it between our check and our CREATE: check again after.
            with contextlib.suppress(subprocess.CalledProcessError):
                self._server.psql(f"CREATE DATABASE {DATABASE};")
        if "(1 row)" not in self._server.psql(exists):
            raise EmbeddedPostgresError(f"could not create database {DATABASE} in the embedded Postgres")

    def dsn(self, database: str = DATABASE) -> str:
        if self._server is None:
            raise RuntimeError("embedded Postgres not started")
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        """Release this process's handle; the server stops when no live process holds one."""
        server, self._server = self._server, None
        if server is None:
            return
        # A process that died without cleaning up leaves its pid behind and would keep the server up
        # forever; forget dead pids first.
        handles = server.global_process_id_list
        try:
            handles.put([pid for pid in handles.get() if _alive(pid)])
        except (OSError, ValueError) as exc:  # the data directory went away under us
            log.warning("embedded Postgres handle list unreadable (%s); stopping anyway", exc)
        server.cleanup()

    def halt(self) -> None:
        """Stop the server now, whatever other processes hold handles (tests simulating an outage)."""
        pg_ctl = _pgserver()._commands.pg_ctl  # generated per binary at import time
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._user())

    def resume(self) -> None:
        """Start the server again after ``halt`` (same data, same socket, same DSN)."""
        if self._server is None:
            raise RuntimeError("embedded Postgres not started")
        self._server.ensure_postgres_running()

    def _user(self) -> str | None:
        return "pgserver" if os.geteuid() == 0 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
