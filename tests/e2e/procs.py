"""Child processes for the end-to-end suite: free loopback ports, start, wait until ready, stop.

Every server binds 127.0.0.1. Servers that cannot report an ephemeral port they bound (nginx, Caddy, the
gate's settings, the PDS whose public URL contains its port) get a port the kernel just handed out.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class Proc:
    """One child process whose output goes to a log file (shown when it fails to start)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin_pipe: bool = False,
        stdout_pipe: bool = False,
        user: tuple[int, int, list[int]] | None = None,  # uid, gid, extra groups (needs root)
    ) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("ab")
        self.popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._log_file,
            stderr=self._log_file,
            start_new_session=True,  # its own process group: stop() signals the server and its children
            user=user[0] if user else None,
            group=user[1] if user else None,
            extra_groups=user[2] if user else None,
        )

    def output(self, limit: int | None = 4000) -> str:
        self._log_file.flush()
        text = self.log.read_text(errors="replace")
        return text if limit is None else text[-limit:]

    def fail(self, why: str) -> AssertionError:
        return AssertionError(f"{self.name}: {why}\n--- {self.log} ---\n{self.output()}")

    def wait_until(self, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise self.fail(f"exited with status {self.popen.returncode} before it was ready")
            if ready():
                return
            time.sleep(0.1)
        raise self.fail(f"not ready after {timeout:.0f} s")

    def wait_http(self, url: str, *, timeout: float = 60.0, verify: bool | ssl.SSLContext = True) -> None:
        def ok() -> bool:
            try:
                return httpx.get(url, timeout=2.0, verify=verify).status_code == 200
            except httpx.HTTPError:
                return False

        self.wait_until(ok, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
            except ProcessLookupError:
                pass
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                stream.close()
        self._log_file.close()
