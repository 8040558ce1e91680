"""The one way tests and benchmarks start the gate.

- ``in_process(settings)``: ``gate.serve.run_gate``, the listeners and parts ``upload-gate serve`` runs, in
  the test's own event loop: fast, and the test can reach the gate's parts (``RunningGate.deps``).
- ``start`` / ``start_async`` / ``gate_process``: ``python -m gate serve`` in its own process, exactly as
  operators run it, for what only a process shows: signals and exit codes, stderr, ``--workers``, memory,
  the embedded Postgres. stdout and stderr are kept in files; the ports are read from the gate's own
  "listening" lines (ask for port 0), and with ``--workers N`` it waits until every worker listens.
- ``watch_process``: ``python -m gate watch`` (the firehose watcher) in its own process, up once its
  metrics listener (``GATE_WATCH_METRICS_LISTEN``) listens.
- ``gate_command``: one of the gate's other commands (``python -m gate keys init`` ...) run to its end.
- ``gate_env``: a test gate's settings (loopback, any free port, one hashing worker, a fixed evidence key).

Deployment tests (tests/deploy, tests/e2e/deployed.py) do not come here: they start the gate exactly as
the shipped file says.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gate.serve import RunningGate, run_gate
from gate.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Each gate process's line (a worker's too; the --workers supervisor's own line has no "(admin"). Text and
# JSON lines alike: JSON escapes the arrow between the two addresses. Only worker 0 has an admin listener.
LISTENING = re.compile(rb"gate listening on 127\.0\.0\.1:(\d+) .*?\(admin (?:127\.0\.0\.1:(\d+)|:0)\)")
WATCH_LISTENING = re.compile(rb"watch metrics listening on 127\.0\.0\.1:(\d+)")

# A fixed test key (base64 of 32 bytes): tests can open the evidence the gate sealed.
TEST_EVIDENCE_KEY = base64.b64encode(bytes(range(32))).decode()


def gate_env(
    upstream_url: str,
    dsn: str,
    policy_path: Path,
    banks_dir: Path,
    data_dir: Path,
    *,
    evidence_key: str | None = TEST_EVIDENCE_KEY,
    hash_workers: int | None = 1,
) -> dict[str, str]:
    """A test gate's settings: loopback on any free ports, ``dsn`` for the decision log ("" for the
    embedded Postgres in ``data_dir``), one hashing worker (the machine is shared) and the test evidence
    key (test policies quarantine); ``None`` leaves either to the gate's default."""
    env = {
        "GATE_LISTEN": "127.0.0.1:0",
        "GATE_METRICS_LISTEN": "127.0.0.1:0",
        "GATE_UPSTREAM": upstream_url,
        "GATE_POLICY": str(policy_path),
        "GATE_BANKS_DIR": str(banks_dir),
        "GATE_DATA_DIR": str(data_dir),
        "DATABASE_URL": dsn,
    }
    if hash_workers is not None:
        env["GATE_HASH_WORKERS"] = str(hash_workers)
    if evidence_key is not None:
        env["GATE_EVIDENCE_KEY"] = evidence_key
    return env


@contextlib.asynccontextmanager
async def in_process(settings: Mapping[str, str]) -> AsyncIterator[RunningGate]:
    """The gate in this event loop, on the settings given (and only those: not this process's GATE_*)."""
    async with run_gate(Settings.from_env(dict(settings))) as running:
        yield running


def process_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its own gate settings (a developer's GATE_* never leaks into a
    test), plus ``settings``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GATE_") and k != "DATABASE_URL"}
    return inherited | dict(settings)


@dataclass
class GateProcess:
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    url: str
    admin_url: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def public(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    @property
    def port(self) -> int:
        return self.public[1]

    @property
    def admin_port(self) -> int:
        return int(self.admin_url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def rss(self) -> int:
        """Resident memory of the gate process itself (not its hashing workers), in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def stop(self, timeout: float = 60, *, check: bool = True) -> int:
        """SIGTERM, then the exit code once the gate has drained. A gate that does not stop is killed with
        everything it started (its own process group: hashing workers, the embedded Postgres), and
        ``check`` makes that an AssertionError."""
        code = _terminate(self.proc, timeout)
        if code is None:
            if check:
                raise AssertionError(f"the gate did not stop on SIGTERM\n{self.log()}")
            return self.proc.returncode
        return code


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM, then the exit code; None when it did not stop in ``timeout`` and was killed with its
    process group (everything it started)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def gate_command(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m gate *args`` from the repository root, run to its end (two minutes at most), its
    output kept as text; ``env``: the whole environment (None: this process's)."""
    return subprocess.run(
        [sys.executable, "-m", "gate", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _spawn(settings: Mapping[str, str], args: Sequence[str], out: Path, err: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "gate", *args],
            cwd=ROOT,
            env=process_env(settings),
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: stop() can clean up after a hung gate
        )


class _Starting:
    """``python -m gate *args`` just spawned; ``check`` says whether it is up yet."""

    def __init__(
        self, settings: Mapping[str, str], workdir: Path, args: Sequence[str], timeout: float
    ) -> None:
        self.out, self.err = workdir / "gate.stdout", workdir / "gate.stderr"
        self.workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
        self.deadline = time.monotonic() + timeout
        self.proc = _spawn(settings, args, self.out, self.err)

    def check(self) -> GateProcess | None:
        """The running gate once every process listens; None while starting; AssertionError if it
        exited or took too long."""
        found = LISTENING.findall(self.err.read_bytes())
        admin = [int(a) for _, a in found if a]
        if len(found) >= self.workers and admin:
            return GateProcess(
                self.proc,
                self.out,
                self.err,
                f"http://127.0.0.1:{int(found[0][0])}",
                f"http://127.0.0.1:{admin[0]}",
            )
        if self.proc.poll() is not None:
            raise AssertionError(f"the gate exited with {self.proc.returncode}\n{self.err.read_text()}")
        if time.monotonic() > self.deadline:
            _kill_group(self.proc)
            raise AssertionError(f"the gate never listened\n{self.err.read_text()}")
        return None

    def ready(self, gate: GateProcess) -> bool:
        """/readyz answers 200 (the listening line comes first; readiness follows the checks)."""
        try:
            with urllib.request.urlopen(gate.admin_url + "/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            if self.proc.poll() is not None or time.monotonic() > self.deadline:
                gate.stop(10, check=False)
                raise AssertionError(f"the gate never became ready\n{self.err.read_text()}") from None
            return False


def start(
    settings: Mapping[str, str],
    workdir: Path,
    *,
    args: Sequence[str] = ("serve",),
    timeout: float = 90,
    ready: bool = False,
) -> GateProcess:
    """``python -m gate *args`` (``serve --workers 2``: the ports are worker 0's), blocking until it
    listens (``ready``: until /readyz says 200). The caller stops it. Not for a test whose servers run in
    its own event loop: use ``start_async``."""
    starting = _Starting(settings, workdir, args, timeout)
    while (gate := starting.check()) is None:
        time.sleep(0.1)
    while ready and not starting.ready(gate):
        time.sleep(0.2)
    return gate


async def start_async(
    settings: Mapping[str, str],
    workdir: Path,
    *,
    args: Sequence[str] = ("serve",),
    timeout: float = 90,
    ready: bool = False,
) -> GateProcess:
    """``start`` for a test whose fakes (upstream, HMA) run in its own event loop."""
    starting = _Starting(settings, workdir, args, timeout)
    while (gate := starting.check()) is None:
        await asyncio.sleep(0.1)
    while ready and not await asyncio.to_thread(starting.ready, gate):
        await asyncio.sleep(0.2)
    return gate


@contextlib.asynccontextmanager
async def gate_process(
    settings: Mapping[str, str], workdir: Path, timeout: float = 90, args: Sequence[str] = ("serve",)
) -> AsyncIterator[GateProcess]:
    """``start_async`` until the block ends, then SIGTERM (a gate the test already stopped is left be)."""
    gate = await start_async(settings, workdir, args=args, timeout=timeout)
    try:
        yield gate
    finally:
        gate.stop(check=False)


@dataclass
class WatchProcess:
    """``python -m gate watch`` running; ``metrics_url``: its private listener (/metrics, /readyz)."""

    proc: subprocess.Popen[bytes]
    stderr: Path
    metrics_url: str

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code; killed with its process group if it does not stop."""
        code = _terminate(self.proc, timeout)
        return self.proc.returncode if code is None else code


@contextlib.asynccontextmanager
async def watch_process(
    settings: Mapping[str, str], workdir: Path, firehose: str, timeout: float = 90
) -> AsyncIterator[WatchProcess]:
    """``python -m gate watch --firehose FIREHOSE`` on ``settings`` (its metrics listener on any free
    port unless they say), from when that listener listens until the block ends, then SIGTERM."""
    workdir.mkdir(parents=True, exist_ok=True)
    err = workdir / "watch.stderr"
    env = {"GATE_WATCH_METRICS_LISTEN": "127.0.0.1:0", **settings}
    proc = _spawn(env, ("watch", "--firehose", firehose), workdir / "watch.stdout", err)
    deadline = time.monotonic() + timeout
    while not (found := WATCH_LISTENING.search(err.read_bytes())):
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill_group(proc)
            raise AssertionError(f"upload-gate watch never listened ({proc.returncode})\n{err.read_text()}")
        await asyncio.sleep(0.1)
    watcher = WatchProcess(proc, err, f"http://127.0.0.1:{int(found[1])}")
    try:
        yield watcher
    finally:
        watcher.stop()


@contextlib.contextmanager
def running(
    settings: Mapping[str, str], workdir: Path, *, args: Sequence[str] = ("serve",), ready: bool = False
) -> Iterator[GateProcess]:
    """``start`` until the block ends, then SIGTERM."""
    gate = start(settings, workdir, args=args, ready=ready)
    try:
        yield gate
    finally:
        gate.stop(check=False)


def refused(settings: Mapping[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m gate serve`` that is expected not to start: its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "gate", "serve"],
        cwd=ROOT,
        env=process_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
