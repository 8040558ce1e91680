"""Postgres and the spool both failing under a running gate: the policy's on_log_failure decides, and
the condition shows on /readyz and in the metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import POLICY, GateFactory
from tests.support import images
from tests.support.upstream import RecordingUpstream

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
AUTH = {"Authorization": "Bearer a.b.c", "Content-Type": "image/png"}
UNREACHABLE = "postgresql://postgres@/upload_gate?host=/nonexistent-socket-dir"


async def ready(admin_url: str) -> tuple[int, dict[str, Any]]:  # the status and the JSON report
    async with aiohttp.ClientSession() as s, s.get(admin_url + "/readyz") as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize("choice", ["forward", "reject"])
async def test_on_log_failure_decides_when_nothing_can_keep_the_record(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], choice: str
) -> None:
    rec, _ = upstream
    policy = POLICY.replace('on_log_failure = "forward"', f'on_log_failure = "{choice}"')
    gate = await start_gate(
        policy=policy,
        DATABASE_URL=UNREACHABLE,  # Postgres away...
        GATE_SPOOL_MAX_BYTES="16",  # ...and no room in the spool for even one record
        GATE_DECISION_RETRY_INTERVAL="0.1",
    )
    async with aiohttp.ClientSession() as s:
        async with s.post(gate.url + UPLOAD, data=images.noise_png(1), headers=AUTH) as r:
            assert r.status == 200  # nothing has failed yet: the log accepted it

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        # (the evidence check is red from the start: Postgres is away and this policy keeps evidence)
        while (await ready(gate.admin_url))[1]["checks"]["decision_log"]["ready"]:
            assert loop.time() < deadline, "decision log never reported the failure"
            await asyncio.sleep(0.05)
        status, report = await ready(gate.admin_url)
        assert status == 503
        assert report["checks"]["decision_log"] == {
            "ready": False,
            "detail": "decision log not accepting",
        }
        async with s.get(gate.admin_url + "/metrics") as r:
            assert "upload_gate_decision_log_accepting 0.0" in await r.text()

        async with s.post(gate.url + UPLOAD, data=images.noise_png(2), headers=AUTH) as r:
            if choice == "reject":
                assert r.status == 503
                assert r.headers["Retry-After"] == "30"
                assert (await r.json())["error"] == "Overloaded"
                assert len(rec.uploads()) == 1  # the PDS never saw the second upload
            else:
                assert r.status == 200
                assert len(rec.uploads()) == 2
