"""/readyz reads HMA's live state: the gate runs as operators run it (``python -m gate serve``) against
the fake HMA (a real aiohttp server). With the status poller slowed to once a minute, a stopped HMA
turns /readyz red on the very next request, and an open circuit breaker is not ready even while HMA's
GET /status still says I-AM-ALIVE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.hma import FakeHma
from tests.integration.conftest import process_env
from tests.support.boot import GateProcess, gate_process
from tests.support.images import jpeg
from tests.support.policies import HMA_CLOSE, head
from tests.support.scrape import sample
from tests.support.upstream import RecordingUpstream

POLICY = head(on_unhashable="reject", hma_banks='["HMA_BLOCK"]') + HMA_CLOSE


@pytest.fixture
async def hma() -> AsyncIterator[FakeHma]:
    async with FakeHma() as fake:
        fake.add_bank("HMA_BLOCK")
        fake.add_signal("HMA_BLOCK", "pdq", "0" * 64)
        fake.add_signal("HMA_BLOCK", "pdq", "f" * 64)  # two hashes: HMA's one-hash-index bug stays away
        yield fake


@pytest.fixture
async def gate(
    tmp_path: Path, upstream: tuple[RecordingUpstream, str], fresh_dsn: str, hma: FakeHma
) -> AsyncIterator[GateProcess]:
    env = {
        **process_env(tmp_path, upstream[1], fresh_dsn, POLICY),
        "GATE_HMA_URL": hma.url,
        "GATE_HMA_STATUS_INTERVAL": "60",  # a poller this slow would leave /readyz a minute behind
        "GATE_HMA_CACHE_SIZE": "0",
        "GATE_HMA_RETRIES": "0",
        "GATE_HMA_BREAKER_FAILURES": "1",
        "GATE_HMA_BREAKER_RESET": "2",
    }
    async with gate_process(env, tmp_path) as running:
        yield running


async def readyz(gate: GateProcess) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(gate.admin_url + "/readyz") as r:
        body: dict[str, Any] = await r.json()
        return r.status, body


async def upload(gate: GateProcess, body: bytes) -> int:
    headers = {"Authorization": "Bearer t", "Content-Type": "image/jpeg"}
    async with (
        aiohttp.ClientSession() as s,
        s.post(gate.url + "/xrpc/com.atproto.repo.uploadBlob", data=body, headers=headers) as r,
    ):
        await r.read()
        return r.status


async def test_a_stopped_hma_is_not_ready_on_the_next_request(gate: GateProcess, hma: FakeHma) -> None:
    status, body = await readyz(gate)
    assert status == 200 and body["checks"]["hma"] == {"ready": True, "detail": "I-AM-ALIVE"}

    assert await sample(gate.admin_url, "upload_gate_ready", check="hma") == 1

    await hma.stop()
    status, body = await readyz(gate)
    assert status == 503 and body["ready"] is False
    assert body["checks"]["hma"]["ready"] is False
    assert body["checks"]["policy"]["ready"] is True  # only HMA is the matter
    # A scrape asks too: what the alert rules read (deploy/prometheus/upload-gate-rules.yml).
    assert await sample(gate.admin_url, "upload_gate_ready", check="hma") == 0
    assert await sample(gate.admin_url, "upload_gate_ready", check="policy") == 1

    await hma.start()  # the same port again
    status, body = await readyz(gate)
    assert status == 200 and body["checks"]["hma"] == {"ready": True, "detail": "I-AM-ALIVE"}
    assert await sample(gate.admin_url, "upload_gate_ready", check="hma") == 1


async def test_an_open_breaker_is_not_ready_while_hma_status_is_fine(gate: GateProcess, hma: FakeHma) -> None:
    photo = jpeg("coffee.png")
    hma.fail = "http_500"  # lookups fail; GET /status keeps answering I-AM-ALIVE
    assert await upload(gate, photo) == 400  # on_matcher_error = reject; one failure opens the breaker
    status, body = await readyz(gate)
    assert status == 503
    assert body["checks"]["hma"] == {"ready": False, "detail": "I-AM-ALIVE; circuit breaker open"}

    await asyncio.sleep(2.2)  # GATE_HMA_BREAKER_RESET: the next upload may probe HMA
    status, body = await readyz(gate)
    assert status == 200
    assert body["checks"]["hma"] == {"ready": True, "detail": "I-AM-ALIVE; circuit breaker half-open"}

    hma.fail = None
    assert await upload(gate, photo) == 200  # the probe succeeds and closes the breaker
    status, body = await readyz(gate)
    assert status == 200 and body["checks"]["hma"] == {"ready": True, "detail": "I-AM-ALIVE"}
