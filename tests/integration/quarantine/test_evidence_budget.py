"""A blocked upload's evidence counts in the memory budget while it is sealed and written, through the
real gate on real ports and a real Postgres."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import asyncpg

from gate.store.vault import held_while_kept
from tests.integration.conftest import GateFactory
from tests.support.scrape import sample, settled_sample
from tests.support.tokens import ALICE_BEARER
from tests.support.upstream import RecordingUpstream

from .test_gate_evidence import HOLD_EXACT, UPLOAD, upload

Upstream = tuple[RecordingUpstream, str]
BUFFERED = "upload_gate_buffered_bytes"
REFUSED = "upload_gate_memory_budget_rejections_total"


async def test_evidence_being_written_holds_the_budget_until_its_insert_is_done(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    rec, _ = upstream
    held = b"\3" * (600 * 1024)
    gate = await start_gate(
        policy=HOLD_EXACT,
        banks={"review": f"sha256,{hashlib.sha256(held).hexdigest()},t"},
        GATE_MAX_UPLOAD_BYTES="1M",
        GATE_MEMORY_BUDGET_BYTES="2M",
    )
    conn = await asyncpg.connect(fresh_dsn)
    try:
        # The evidence INSERT waits behind this lock, so the held upload stays at its peak meanwhile.
        locked = conn.transaction()
        await locked.start()
        await conn.execute("LOCK TABLE evidence IN ACCESS EXCLUSIVE MODE")
        blocked = asyncio.create_task(upload(gate.url, held))
        peak = len(held) + held_while_kept(len(held))  # the body, its ciphertext, asyncpg's copy
        assert await settled_sample(gate.admin_url, BUFFERED, peak) == peak
        # 300 KiB more does not fit beside it (the body and its worker's copy alone would have).
        async with aiohttp.ClientSession() as s:
            headers = {"Authorization": ALICE_BEARER, "Content-Type": "image/jpeg"}
            async with s.post(gate.url + UPLOAD, data=b"\4" * (300 * 1024), headers=headers) as r:
                assert (r.status, (await r.json())["error"]) == (503, "Overloaded")
        assert not blocked.done()
        await locked.rollback()
        status, answer = await asyncio.wait_for(blocked, 30)
        assert (status, answer) == (400, {"error": "BlobHeld", "message": "held for review"})
        assert await settled_sample(gate.admin_url, BUFFERED, 0) == 0  # every copy given back
        sha = hashlib.sha256(held).hexdigest()
        assert await conn.fetchval(
            "SELECT octet_length(ciphertext) FROM evidence WHERE sha256 = $1", sha
        ) == (len(held) + 16)
        async with asyncio.timeout(10):  # the decision log writes its rows in the background
            while (
                verdict := await conn.fetchval("SELECT verdict FROM decisions WHERE sha256 = $1", sha)
            ) is None:
                await asyncio.sleep(0.05)
        assert verdict == "quarantine"
        assert rec.uploads() == []
    finally:
        await conn.close()


async def test_evidence_that_cannot_fit_follows_the_store_failure_policy(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    """At the smallest budget (twice the largest upload), the largest blocked upload's evidence cannot be
    held: nothing else is out whose copy could come back, so it is a store failure (503 by default) —
    counted and recorded, never a budget overrun."""
    rec, _ = upstream
    held = b"\5" * (1000 * 1024)
    sha = hashlib.sha256(held).hexdigest()
    gate = await start_gate(
        policy=HOLD_EXACT,
        banks={"review": f"sha256,{sha},t"},
        GATE_MAX_UPLOAD_BYTES="1M",
        GATE_MEMORY_BUDGET_BYTES="2M",
    )
    failed = {"verdict": "quarantine", "result": "failed"}
    before = await sample(gate.admin_url, "upload_gate_evidence_total", **failed)
    refused = await sample(gate.admin_url, REFUSED)
    status, answer = await upload(gate.url, held)
    assert (status, answer["error"]) == (503, "Overloaded")
    assert await sample(gate.admin_url, "upload_gate_evidence_total", **failed) == before + 1
    # The 503 is the store-failure policy's answer (a "block" policy would give none): not a budget refusal.
    assert await sample(gate.admin_url, REFUSED) == refused
    assert await sample(gate.admin_url, BUFFERED) == 0
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM evidence") == 0
        async with asyncio.timeout(10):
            while (
                error := await conn.fetchval("SELECT error FROM decisions WHERE sha256 = $1", sha)
            ) is None:
                await asyncio.sleep(0.05)
        assert "memory budget" in error
    finally:
        await conn.close()
    assert rec.uploads() == []
