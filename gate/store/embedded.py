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

from gate.errors import Unavailable

log = logging.getLogger(__name__)

DATABASE = "upload_gate"


class EmbeddedPostgresError(Unavailable, OSError):
    """The embedded server would not start (an OSError: the gate reports it as "cannot start")."""


def _pgserver() -> Any:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (services, CI); pgserver then
    # uses /tmp/runtime-$UID for its lock file, which is fine for us.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # deferred: only the embedded mode pays for it

    # pgserver narrates every step at INFO (~45 lines per start, whole command outputs) and dumps the
    # entire server log at ERROR on a failure; the gate says what matters itself, in one line each.
    logging.getLogger("pgserver").setLevel(logging.CRITICAL + 1)
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
        pgserver = _pgserver()
        joined = self.pid() is not None and self.running()
        try:
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedPostgresError(
                f"embedded Postgres in {self.pgdata} did not start{self._log_tail()}"
            ) from exc
        info = self._server.get_postmaster_info()
        log.info(
            "embedded Postgres %s in %s (pid %d, Unix socket only)",
            "joined" if joined else "started",
            self.pgdata,
            info.pid,
        )
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

    def restart(self) -> int:
        """Start the server again after it died (same data, socket and DSN); returns its new pid."""
        if self._server is None:
            raise RuntimeError("embedded Postgres not started")
        try:
            self._server.ensure_postgres_running()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedPostgresError(f"embedded Postgres did not start{self._log_tail(3)}") from exc
        pid = self.pid()
        if pid is None or not self.running():
            # pgserver counts a dead postmaster that nobody has reaped yet as running.
            raise EmbeddedPostgresError(f"the old postmaster (pid {pid}) has not exited yet")
        return pid

    def resume(self) -> None:
        """Start the server again after ``halt`` (same data, same socket, same DSN)."""
        if self._server is None:
            raise RuntimeError("embedded Postgres not started")
        self._server.ensure_postgres_running()

    def _user(self) -> str | None:
        return "pgserver" if os.geteuid() == 0 else None

    # ---- the server process, as its lock file and the kernel describe it ---------------------------

    def lock_file(self) -> tuple[int, str] | None:
        """(pid, status) from ``postmaster.pid``: the postmaster's pid and "starting", "ready" or
        "stopping". None when there is no lock file (never started, or shut down cleanly)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if not lines or not lines[0].strip().isdigit():
            return None
        return int(lines[0]), (lines[7].strip() if len(lines) > 7 else "starting")

    def pid(self) -> int | None:
        lock = self.lock_file()
        return lock[0] if lock else None

    def running(self) -> bool:
        """The postmaster named by the lock file is a live postgres process (not a zombie, not a pid
        reused by something else). Read from the kernel on every call: nothing here is cached."""
        pid = self.pid()
        return pid is not None and _postgres_alive(pid)

    def _log_tail(self, lines: int = 5) -> str:
        """The end of the server's own log, for an error message (it says why it would not start)."""
        try:
            text = (self.pgdata / "log").read_text(errors="replace")
        except OSError:
            return ""
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return "; its log ends:\n  " + "\n  ".join(tail) if tail else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _postgres_alive(pid: int) -> bool:
    """``pid`` is a running postgres process. A killed postmaster stays a zombie until its parent reaps
    it; when that parent is this process (the gate as PID 1 in a container inherits the daemonised
    postmaster), reap it here, or no restart could ever take its lock file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): existence is all we can tell
        return _alive(pid)
    comm, _, rest = stat.partition(" (")[2].rpartition(")")
    fields = rest.split()
    if len(fields) < 2:
        return False
    state, ppid = fields[0], int(fields[1])
    if state in ("Z", "X"):
        if ppid == os.getpid():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        return False
    return comm == "postgres"
