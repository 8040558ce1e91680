"""Banks and policy change under a running gate: what operators edit takes effect without a restart."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from prometheus_client import REGISTRY

from tests.integration.conftest import GateFactory
from tests.support import images
from tests.support.upstream import RecordingUpstream

AUTH = {"Authorization": "Bearer t", "Content-Type": "image/png"}
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"


async def upload(url: str, body: bytes) -> int:
    async with aiohttp.ClientSession() as s, s.post(url + UPLOAD, data=body, headers=AUTH) as r:
        return r.status


async def eventually(check: Callable[[], Awaitable[object]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.1)


async def test_a_hash_added_to_a_bank_file_blocks_the_next_upload(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str]
) -> None:
    rec, _ = upstream
    gate = await start_gate()
    body = images.noise_png(seed=7)
    assert await upload(gate.url, body) == 200
    bank = gate.deps.settings.banks_dir / "blocklist.csv"
    bank.write_text(f"sha256,{hashlib.sha256(body).hexdigest()},added-live\n")

    async def blocked() -> bool:
        return await upload(gate.url, images.noise_png(seed=7)) == 400

    await eventually(blocked)
    assert len(rec.uploads()) >= 1 and all(s.body == body for s in rec.uploads())


async def test_deleting_a_bank_a_rule_names_is_reported_at_once(start_gate: GateFactory) -> None:
    gate = await start_gate()
    before = REGISTRY.get_sample_value("upload_gate_policy_reloads_total", {"result": "error"}) or 0.0
    version = gate.deps.policy.current.version
    Path(gate.deps.settings.banks_dir / "review.csv").unlink()

    async def counted() -> bool:
        now = REGISTRY.get_sample_value("upload_gate_policy_reloads_total", {"result": "error"}) or 0.0
        return now > before

    await eventually(counted)
    assert gate.deps.policy.current.version == version  # the last good policy stays in force
