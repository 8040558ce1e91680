"""Debian's ``prometheus`` package (the server and promtool), as the tests of deploy/prometheus and
deploy/grafana use it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml


def need(binary: str) -> str:
    """The path of ``prometheus`` or ``promtool``; a missing one fails the test with how to install it."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed (apt-get install prometheus; make test does)", pytrace=False)
    return path


@dataclass
class Prometheus:
    url: str
    log: Path

    async def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a Prometheus HTTP API answer; an error answer fails with its message."""
        async with aiohttp.ClientSession() as s, s.get(self.url + path, params=params) as r:
            body = await r.json()
        assert body["status"] == "success", f"{params}: {body.get('errorType')}: {body.get('error')}"
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's series (``[]`` when it selects none)."""
        data = await self.api("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def prometheus(
    workdir: Path,
    job: str,
    targets: list[str],
    rule_files: tuple[Path, ...] = (),
    also: Mapping[str, list[str]] | None = None,
) -> AsyncIterator[Prometheus]:
    """Debian's Prometheus scraping ``targets`` (host:port, path /metrics) as ``job`` every second (and
    ``also``'s targets as their own jobs), with ``rule_files`` loaded and evaluated every second; stopped
    when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": found}]}
            for name, found in {job: targets, **(also or {})}.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                need("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Prometheus(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"prometheus exited with {proc.returncode}\n{log.read_text()}"
            assert time.monotonic() < deadline, f"prometheus never became ready\n{log.read_text()}"
            try:
                async with aiohttp.ClientSession() as s, s.get(running.url + "/-/ready") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
