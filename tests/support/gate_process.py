"""The gate as operators run it: ``python -m gate serve`` in its own process, stdout and stderr kept in
files, its ports read from its own "listening" log line. Stopped with SIGTERM when the block ends."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Text and JSON lines alike (JSON escapes the arrow between the two addresses).
LISTENING = re.compile(rb"gate listening on 127\.0\.0\.1:(\d+) .*?\(admin 127\.0\.0\.1:(\d+)\)")


@dataclass
class GateProcess:
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    url: str
    admin_url: str

    @property
    def public(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def rss(self) -> int:
        """Resident memory of the gate process itself (not its hashing workers), in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code once the gate has drained."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the gate did not stop on SIGTERM\n{self.log()}") from None


@contextlib.asynccontextmanager
async def gate_process(
    env: Mapping[str, str], workdir: Path, timeout: float = 90, args: Sequence[str] = ("serve",)
) -> AsyncIterator[GateProcess]:
    """``python -m gate *args`` (``serve --workers 2``: the ports are worker 0's)."""
    out, err = workdir / "gate.stdout", workdir / "gate.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gate", *args], cwd=ROOT, env=dict(env), stdout=stdout, stderr=stderr
        )
    try:
        deadline = time.monotonic() + timeout
        while (found := LISTENING.search(err.read_bytes())) is None:
            assert proc.poll() is None, f"the gate exited with {proc.returncode}\n{err.read_text()}"
            assert time.monotonic() < deadline, f"the gate never listened\n{err.read_text()}"
            await asyncio.sleep(0.1)
        public, admin = int(found[1]), int(found[2])
        yield GateProcess(proc, out, err, f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
