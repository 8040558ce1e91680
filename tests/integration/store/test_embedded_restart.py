"""The gate's embedded Postgres killed under a running gate (``python -m gate serve``): /readyz turns red
at once, the gate restarts the server, /readyz turns green, and both the decision log and the evidence
store work again. A clean shutdown by someone else is reported and left alone.

The test finds the server's pid the way the gate does: the first line of ``postmaster.pid``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from gate.store.embedded import EmbeddedPostgres
from tests.integration.conftest import process_env
from tests.support.boot import GateProcess, gate_process
from tests.support.images import noise_png
from tests.support.postgres import server_dir
from tests.support.upstream import RecordingUpstream

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
# The test policy quarantines images that cannot be decoded: a PNG signature and nothing else.
UNHASHABLE = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def readyz(gate: GateProcess) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(gate.admin_url + "/readyz") as r:
        body: dict[str, Any] = await r.json()
        return r.status, body


async def upload(gate: GateProcess, body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gate.url + UPLOAD, data=body, headers={"Authorization": "Bearer t", "Content-Type": "image/png"}
        ) as r,
    ):
        await r.read()
        return r.status


def postmaster_pid(data: Path) -> int:
    return int((data / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])


async def dead(pid: int) -> None:
    """Until the kernel says the killed process has exited (a zombie or gone): SIGKILL is delivered
    when the process next runs, not when kill() returns."""
    deadline = time.monotonic() + 10
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return
        if state in ("Z", "X"):
            return
        assert time.monotonic() < deadline, f"pid {pid} still {state}"
        await asyncio.sleep(0.01)


async def wait_ready(gate: GateProcess, limit: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        status, body = await readyz(gate)
        if status == 200:
            return body
        assert time.monotonic() < deadline, f"never ready again: {body}\n{gate.log()}"
        await asyncio.sleep(0.2)


async def test_a_killed_embedded_postgres_is_reported_at_once_and_restarted(
    tmp_path: Path, upstream: tuple[RecordingUpstream, str]
) -> None:
    recorder, upstream_url = upstream
    with server_dir() as data:
        env = {**process_env(tmp_path, upstream_url, ""), "DATABASE_URL": "", "GATE_DATA_DIR": str(data)}
        async with gate_process(env, tmp_path) as gate:
            body = await wait_ready(gate)
            old = postmaster_pid(data)
            assert body["checks"]["postgres"] == {
                "ready": True,
                "detail": f"embedded Postgres running (pid {old})",
            }

            os.kill(old, signal.SIGKILL)
            await dead(old)
            status, body = await readyz(gate)  # the very next look, no waiting for a probe
            assert status == 503 and body["ready"] is False
            assert body["checks"]["postgres"]["ready"] is False
            assert f"embedded Postgres (pid {old}) died" in body["checks"]["postgres"]["detail"]

            # Uploads are answered meanwhile: forwarded ones spool, held ones follow on_store_failure.
            assert await upload(gate, noise_png(7, size=48)) == 200

            body = await wait_ready(gate)
            new = postmaster_pid(data)
            assert new != old
            assert body["checks"]["postgres"] == {
                "ready": True,
                "detail": f"embedded Postgres running (pid {new})",
            }
            assert body["checks"]["evidence"]["ready"] is True

            # The restarted server takes the gate's decisions and evidence as before.
            assert await upload(gate, UNHASHABLE) == 400  # held: the test policy's on_unhashable
            dsn = EmbeddedPostgres(data).pgdata  # the socket directory, as the gate's DSN names it
            conn = await asyncpg.connect(host=str(dsn), user="postgres", database="upload_gate")
            try:
                deadline = time.monotonic() + 30
                while True:
                    held = await conn.fetchval(
                        "SELECT count(*) FROM evidence WHERE sha256 = $1 AND ciphertext IS NOT NULL",
                        hashlib.sha256(UNHASHABLE).hexdigest(),
                    )
                    decided = await conn.fetchval("SELECT count(*) FROM decisions")
                    if held == 1 and decided == 2:  # the spooled forward was replayed too
                        break
                    assert time.monotonic() < deadline, (held, decided, gate.log())
                    await asyncio.sleep(0.2)
            finally:
                await conn.close()
            assert gate.stop() == 0

    log = gate.log()
    assert f"ERROR gate.store.keeper embedded Postgres (pid {old}) died; restarting it" in log
    assert "Traceback" not in log  # the outage is told in a few lines, not in library stack traces
    assert f"INFO gate.store.keeper embedded Postgres restarted (pid {new})" in log
    assert len(recorder.uploads()) == 1


async def test_a_clean_shutdown_by_someone_else_is_reported_not_undone(
    tmp_path: Path, upstream: tuple[RecordingUpstream, str]
) -> None:
    _, upstream_url = upstream
    with server_dir() as data:
        env = {**process_env(tmp_path, upstream_url, ""), "DATABASE_URL": "", "GATE_DATA_DIR": str(data)}
        async with gate_process(env, tmp_path) as gate:
            await wait_ready(gate)
            await asyncio.to_thread(EmbeddedPostgres(data).halt)  # pg_ctl stop, as an operator would
            status, body = await readyz(gate)
            assert status == 503
            assert "shut down cleanly, not by the gate" in body["checks"]["postgres"]["detail"]
            assert body["checks"]["evidence"]["ready"] is False  # the test policy keeps evidence
            await asyncio.sleep(3)  # several keeper rounds: still down, still said
            status, body = await readyz(gate)
            assert status == 503 and body["checks"]["postgres"]["ready"] is False
            assert not (data / "postgres" / "postmaster.pid").exists()
            assert gate.stop() == 0
    assert gate.log().count("was shut down (not by the gate); not restarting it") == 1
