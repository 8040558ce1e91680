"""``upload-gate serve --workers N``: N gate processes answering on one port (``SO_REUSEPORT``).

One event loop saturates one core long before the hashing pool does (HTTP parsing, the body read, JSON,
the decision log), so past one core the gate runs several whole gates. This module is the supervisor:
it holds the port, starts the workers, forwards SIGTERM/SIGINT/SIGHUP to them and exits when they have
drained. Each worker is a plain ``python -m gate serve`` with ``GATE_WORKER=<i>`` and:

- the public listener bound with ``SO_REUSEPORT``: the kernel spreads new connections over the
  workers. The supervisor binds the port first (without listening: it takes no connections), so port 0
  resolves to one concrete port shared by all, and a port in use fails before any worker starts;
- its own hashing pool, sized ``cores / N`` unless GATE_HASH_WORKERS says otherwise (N pools of one
  core each rather than N pools fighting over every core);
- its own GATE_DATA_DIR (``<data dir>/workers/<i>``): the decision-log outage spool is owned by one
  process (flock). The decision log itself is shared: DATABASE_URL, or the embedded Postgres of the
  data directory, which the supervisor starts once and hands to the workers;
- the admin/metrics listener in worker 0 only (it serves operators, not uploads). Metrics are
  aggregated over all workers with prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, a
  fresh directory per run): counting only worker 0's uploads would under-report every rate by N.
  Gauges are then reported per worker (a ``pid`` label).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gate.proxy.drain import stop_bound
from gate.settings import Settings
from gate.store.keeper import PostgresKeeper
from gate.store.spool import Spool, spool_dir

log = logging.getLogger("gate.workers")

WORKER_ENV = "GATE_WORKER"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def worker_index() -> int | None:
    """This process's worker number when started by the supervisor, else None (a single gate)."""
    raw = os.environ.get(WORKER_ENV)
    return int(raw) if raw is not None and raw.isdigit() else None


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) with SO_REUSEPORT: resolves port 0 and keeps the port ours for the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _worker_env(
    settings: Settings, index: int, workers: int, port: int, dsn: str | None, metrics_dir: Path
) -> dict[str, str]:
    env = dict(os.environ)
    env[WORKER_ENV] = str(index)
    env["GATE_LISTEN"] = f"{settings.listen[0]}:{port}"
    env["GATE_DATA_DIR"] = str(worker_data_dir(settings.data_dir, index).absolute())
    env["GATE_ADMIN_TOKENS"] = str(settings.admin_tokens_file.absolute())
    env["GATE_BANK_CACHE"] = str(settings.bank_cache_dir.absolute())  # one copy, its pages shared
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if settings.hash_workers == 0:
        env["GATE_HASH_WORKERS"] = str(max(1, (os.cpu_count() or 1) // workers))
    if dsn is not None:
        env["DATABASE_URL"] = dsn
    return env


def run_workers(settings: Settings, workers: int, cli_args: list[str]) -> int:
    """Run ``workers`` gate processes until SIGTERM/SIGINT; the exit code is 0 after a clean drain."""
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)

    for sig in (*STOP_SIGNALS, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, on_signal)
    try:
        holder = reserve_port(*settings.listen)
    except OSError as exc:
        print(f"upload-gate: cannot start: {exc}", file=sys.stderr)
        return 2
    port = int(holder.getsockname()[1])
    embedded = None
    metrics_dir = Path(tempfile.mkdtemp(prefix="upload-gate-metrics-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        dsn = settings.database_url
        if dsn is None:
            from gate.store.embedded import EmbeddedPostgres

            embedded = EmbeddedPostgres(settings.data_dir)
            dsn = embedded.start()
        gather_orphans(settings.data_dir, workers, settings.spool_max_bytes)
        for i in range(workers):
            env = _worker_env(settings, i, workers, port, dsn, metrics_dir)
            procs.append(subprocess.Popen([sys.executable, "-m", "gate", *cli_args], env=env))  # noqa: S603  our own argv
        log.info(
            "gate listening on %s:%d with %d workers (pids %s)",
            settings.listen[0],
            port,
            workers,
            [p.pid for p in procs],
        )
        keeper = PostgresKeeper(embedded) if embedded is not None else None
        return _supervise(procs, received, _stop_timeout(settings), keeper)
    finally:
        _stop_all(procs, _stop_timeout(settings))
        holder.close()
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _stop_timeout(settings: Settings) -> float:
    """How long a worker may take to drain and exit before it is killed: its listener's bound, then
    the decision log's drain, and a margin."""
    return stop_bound(settings) + settings.decision_drain_timeout + 10


def _supervise(
    procs: list[subprocess.Popen[bytes]],
    received: list[int],
    stop_timeout: float,
    keeper: PostgresKeeper | None = None,
) -> int:
    next_look = time.monotonic()
    while True:
        if keeper is not None and time.monotonic() >= next_look:
            keeper.tick()  # the embedded Postgres is the supervisor's: it restarts it if it dies
            next_look = time.monotonic() + 1.0
        while received:
            signum = received.pop(0)
            if signum in STOP_SIGNALS:
                log.info("stopping %d workers: draining in-flight uploads", len(procs))
                return 0 if _stop_all(procs, stop_timeout) else 1
            if signum == signal.SIGHUP:
                for proc in procs:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGHUP)
        for proc in procs:
            if proc.poll() is not None:
                # A worker that dies takes the gate down with it: a supervisor (systemd, k8s) restarts
                # the whole gate rather than this one silently serving with fewer workers.
                log.error("worker pid %d exited with %s: stopping the gate", proc.pid, proc.returncode)
                _stop_all(procs, stop_timeout)
                return 1
        time.sleep(0.2)  # woken early by any signal (SIGCHLD too)


def _stop_all(procs: list[subprocess.Popen[bytes]], timeout: float) -> bool:
    """SIGTERM every live worker, wait for them to drain; True when all exited 0."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
    deadline = time.monotonic() + timeout
    clean = True
    for proc in procs:
        try:
            code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        clean = clean and code == 0
    return clean


def worker_data_dir(data_dir: Path, index: int) -> Path:
    return data_dir / "workers" / str(index)


def gather_orphans(data_dir: Path, workers: int, max_bytes: int) -> int:
    """Before a gate starts with ``workers`` processes: move the rows of every spool it will not open
    (left by a run with more, fewer or no workers) into one it will, so they are replayed rather than
    stranded until the old layout returns. Returns how many rows moved; a spool in use (another gate
    on this data directory) or a full target is left as it is, and said so."""
    if workers <= 1:
        live = [spool_dir(data_dir)]
    else:
        live = [spool_dir(worker_data_dir(data_dir, i)) for i in range(workers)]
    found = [spool_dir(data_dir), *sorted(spool_dir(d) for d in data_dir.glob("workers/*"))]
    orphans = [d for d in found if d not in live and (d / "decisions.spool").exists()]
    moved = 0
    for n, orphan in enumerate(orphans):
        target = Spool(live[n % len(live)], max_bytes)
        try:
            target.open()
            try:
                count = target.adopt(orphan)
            finally:
                target.close()
        except OSError as exc:
            log.error("decisions in %s were not moved to %s: %s", orphan, target.directory, exc)
            continue
        if count:
            log.warning("moved %d unreplayed decisions from %s into %s", count, orphan, target.directory)
        moved += count
    return moved
