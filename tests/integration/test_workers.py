"""``upload-gate serve --workers 2``: two gate processes answer uploads on one port, then stop cleanly.

The gate runs as operators run it (``python -m gate serve``), in front of a recording upstream. Which
worker judged an upload is read from the gate's own decision log lines, which carry the worker's pid.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path

import aiohttp

from gate.store.rows import record_to_row
from gate.store.spool import Spool
from tests.integration.conftest import process_env
from tests.integration.store import records as R
from tests.integration.store.conftest import fetch_rows
from tests.support.boot import gate_process
from tests.support.images import encode, photo
from tests.support.upstream import RecordingUpstream

LISTENING = re.compile(rb"gate listening on 127\.0\.0\.1:(\d+) with 2 workers \(pids \[(\d+), (\d+)\]\)")
WORKER_UP = re.compile(rb"INFO \[(\d+)\] gate gate listening on 127\.0\.0\.1:(\d+)")
DECISION = re.compile(rb"INFO \[(\d+)\] gate\.decisions decision (\{.*\})")


async def _upload(url: str, body: bytes) -> int:
    # A fresh connection per upload: SO_REUSEPORT spreads connections, not requests.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.post(
            url + "/xrpc/com.atproto.repo.uploadBlob",
            data=body,
            headers={"Authorization": "Bearer test", "Content-Type": "image/png"},
        ) as resp,
    ):
        await resp.read()
        return resp.status


async def _ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with aiohttp.ClientSession() as session, session.get(url + "/xrpc/_health") as resp:
                await resp.read()
                return
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.2)
    raise AssertionError("the gate never answered")


async def test_two_workers_share_one_port(
    tmp_path: Path, upstream: tuple[RecordingUpstream, str], fresh_dsn: str
) -> None:
    recorder, upstream_url = upstream
    # 24 uploads at once, all from loopback: not a per-address limit test.
    env = process_env(tmp_path, upstream_url, fresh_dsn) | {"GATE_MAX_UPLOADS_PER_IP": "0"}
    # A previous single-process run left decisions in its outage spool: a worker must replay them.
    left = Spool(tmp_path / "var" / "spool", 1 << 20)
    left.open()
    records = [R.forward(n) for n in range(3)]
    left.append([record_to_row(r) for r in records])
    left.close()
    stranded = {uuid.UUID(hex=r.id) for r in records}
    async with gate_process(env, tmp_path, args=("serve", "--workers", "2")) as gate:
        # Every worker listens by now (the helper waits for each one's line), all on one port.
        log = gate.stderr
        listening = LISTENING.search(log.read_bytes())
        assert listening is not None, gate.log()
        port, pids = int(listening[1]), {int(listening[2]), int(listening[3])}
        url = gate.url
        assert {int(pid) for pid, _ in WORKER_UP.findall(log.read_bytes())} == pids
        assert {int(p) for _, p in WORKER_UP.findall(log.read_bytes())} == {port} == {gate.port}
        await _ready(url)
        body = encode(photo("coffee.png").resize((300, 200)), "PNG")
        statuses = await asyncio.gather(*(_upload(url, body) for _ in range(24)))
        assert statuses == [200] * 24
        assert [s.body for s in recorder.uploads()] == [body] * 24  # every byte reached the upstream

        deadline = time.monotonic() + 30
        judged: dict[int, int] = {}
        while sum(judged.values()) < 24 and time.monotonic() < deadline:
            judged = {}
            for pid, record in DECISION.findall(log.read_bytes()):
                assert json.loads(record)["verdict"] == "forward"
                judged[int(pid)] = judged.get(int(pid), 0) + 1
            await asyncio.sleep(0.1)
        assert sum(judged.values()) == 24
        assert set(judged) == pids  # both workers judged uploads (each has a 1 in 2**23 chance of none)
        while not stranded <= {r["id"] for r in await fetch_rows(fresh_dsn)}:
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        code = gate.stop(90)
    assert code == 0, log.read_text()
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()
        )
    assert b"Traceback" not in log.read_bytes(), log.read_text()
