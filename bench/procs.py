"""The processes a benchmark runs: the upstream, the gate (``python -m gate serve``), the load generator,
and a sampler of the gate's resident memory (the gate process plus every process under it)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.support import boot
from tests.support.boot import GateProcess

REPO = Path(__file__).resolve().parents[1]

POLICY = """
on_unhashable = "reject"
on_unscannable = "forward"
on_matcher_error = "reject"
on_log_failure = "forward"
on_low_quality = "forward"

[[rules]]
name = "banned-exact"
source = "local"
banks = ["banned"]
signal_types = ["sha256", "md5"]
action = "reject"

[[rules]]
name = "banned-pdq"
source = "local"
banks = ["banned"]
signal_types = ["pdq"]
max_distance = 31
action = "reject"
"""


@dataclass
class Server:
    url: str
    pid: int


@contextlib.contextmanager
def upstream() -> Iterator[str]:
    with _server("bench.upstream") as server:
        yield server.url


@contextlib.contextmanager
def relay(upstream_url: str) -> Iterator[Server]:
    """``python -m bench.relay``: a bare aiohttp relay in front of ``upstream_url``."""
    with _server("bench.relay", upstream_url) as server:
        yield server


@contextlib.contextmanager
def _server(module: str, *args: str) -> Iterator[Server]:
    """A benchmark server in its own process, which prints ``PORT <n>`` once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"{module} did not start: {line!r}")
        yield Server(f"http://127.0.0.1:{int(line.split()[1])}", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _bank(path: Path, n: int) -> None:
    """A local bank of n random PDQ hashes and n SHA-256s: the uploads match none, but every upload
    pays for a real lookup."""
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    rows = [f"pdq,{r.tobytes().hex()},bench\nsha256,{r[::-1].tobytes().hex()},bench\n" for r in raw]
    path.write_text("".join(rows))


@contextlib.contextmanager
def gate(
    upstream_url: str,
    *,
    workers: int = 1,
    bank_size: int = 10_000,
    env: dict[str, str] | None = None,
    dsn: str = "",
) -> Iterator[GateProcess]:
    """``python -m gate serve`` as the tests start it (tests.support.boot), on ``dsn`` (default: the
    embedded Postgres in its own data directory) and the gate's own hashing pool size, once /readyz says
    ready."""
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        root = Path(tmp)
        (root / "banks").mkdir()
        _bank(root / "banks" / "banned.csv", bank_size)
        (root / "policy.toml").write_text(POLICY)
        settings = boot.gate_env(
            upstream_url,
            dsn,
            root / "policy.toml",
            root / "banks",
            root / "var",
            evidence_key=None,
            hash_workers=None,
        )
        # The load generator is every client at once, all from loopback: no per-address limit.
        settings |= {"GATE_MAX_UPLOADS_PER_IP": "0", **(env or {})}
        args = ["serve"] + (["--workers", str(workers)] if workers > 1 else [])
        with boot.running(settings, root, args=args, ready=True) as running:
            time.sleep(1.0)  # hash worker processes finish importing
            yield running


def load(job: dict[str, Any]) -> dict[str, Any]:
    """Run one load-generator job in its own process and return its result."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.load", json.dumps(job)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if out.returncode:
        raise RuntimeError(f"load generator failed: {out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
    return pids


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples the summed RSS of a process tree every few milliseconds; ``peak`` in bytes.

    Postgres (the embedded decision log) is a child of the gate too, but it is not the gate's upload
    memory: processes whose command line says postgres are left out."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(_rss(p) for p in _tree(self.pid) if not _is_postgres(p))
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def current(self) -> int:
        return sum(_rss(p) for p in _tree(self.pid) if not _is_postgres(p))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (its threads included, not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and every process under it now (nginx's master and its worker; a Postgres
    server and its backends — those that already exited are not counted)."""
    return sum(cpu_seconds(p) for p in _tree(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(CPU seconds of the gate's own process, of the processes under it except Postgres)."""
    others = [p for p in _tree(pid) if p != pid and not _is_postgres(p)]
    return cpu_seconds(pid), sum(cpu_seconds(p) for p in others)


def _is_postgres(pid: int) -> bool:
    try:
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def parent(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise ValueError(f"no PPid line for {pid}")
