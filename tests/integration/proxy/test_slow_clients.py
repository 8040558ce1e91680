"""Clients that declare much and send little, through the gate's real port (bare sockets).

Memory is reserved as bytes arrive, never as declared; a body that pauses or trickles is cut with a
well-formed 408 and its reservation freed. A garbage token is enough for all of it: these answers come
before any verdict.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

from tests.integration.conftest import GateFactory, process_env
from tests.support.boot import gate_process
from tests.support.raw_http import read_response, start_upload
from tests.support.scrape import sample, settled_sample
from tests.support.upstream import RecordingUpstream

Upstream = tuple[RecordingUpstream, str]
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
AUTH = {"Authorization": "Bearer garbage", "Content-Type": "application/octet-stream"}
KiB = 1024
MiB = 1024 * KiB


async def upload(url: str, body: bytes) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.post(url + UPLOAD, data=body, headers=AUTH) as r:
        return r.status, await r.json()


async def test_declared_lengths_lock_nothing(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate(
        GATE_MAX_UPLOAD_BYTES="1M", GATE_MEMORY_BUDGET_BYTES="2M", GATE_BODY_IDLE_TIMEOUT="2"
    )
    host, port = gate.public
    # Sixteen clients (behind the trusted front proxy) declare eight times the budget and send one
    # byte each: none of it is held.
    held = [
        await start_upload(host, port, MiB, b"\x89", {"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(16)
    ]
    body = os.urandom(512 * KiB)
    status, answer = await upload(gate.url, body)
    assert status == 200, answer
    assert [s.body for s in rec.uploads()] == [body]
    for reader, writer in held:
        cut = await read_response(reader)
        assert (cut.status, cut.json()) == (
            408,
            {"error": "RequestTimeout", "message": "no upload bytes for 2 s"},
        )
        assert cut.headers["connection"] == "close"
        writer.close()
    assert await sample(gate.admin_url, "upload_gate_buffered_bytes") == 0
    assert len(rec.uploads()) == 1  # nothing of the cut bodies reached the PDS


async def test_a_cut_body_frees_what_it_held(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate(
        GATE_MAX_UPLOAD_BYTES="1M", GATE_MEMORY_BUDGET_BYTES="2M", GATE_BODY_IDLE_TIMEOUT="1.5"
    )
    host, port = gate.public
    before = await sample(gate.admin_url, "upload_gate_body_timeouts_total", reason="idle")
    # Two bodies send 900 KiB of their megabyte and stop: those bytes are held, and count.
    stalled = [await start_upload(host, port, MiB, b"\0" * (900 * KiB)) for _ in range(2)]
    assert await settled_sample(gate.admin_url, "upload_gate_buffered_bytes", 1800 * KiB) == 1800 * KiB
    status, answer = await upload(gate.url, b"\1" * (300 * KiB))
    assert (status, answer["error"]) == (503, "Overloaded")
    for reader, writer in stalled:
        assert (await read_response(reader)).status == 408
        writer.close()
    assert await sample(gate.admin_url, "upload_gate_body_timeouts_total", reason="idle") == before + 2
    assert await sample(gate.admin_url, "upload_gate_buffered_bytes") == 0
    status, answer = await upload(gate.url, b"\1" * (300 * KiB))
    assert status == 200, answer
    assert len(rec.uploads()) == 1


async def test_a_body_slower_than_the_minimum_rate_is_cut(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_BODY_IDLE_TIMEOUT="10", GATE_BODY_MIN_RATE="4K", GATE_BODY_RATE_GRACE="1.5")
    host, port = gate.public
    before = await sample(gate.admin_url, "upload_gate_body_timeouts_total", reason="rate")
    # A fast start (64 KiB: sixteen seconds of credit at 4 KiB/s, but credit is capped at the grace),
    # then a byte every 0.2 s: never idle, far too slow.
    reader, writer = await start_upload(host, port, MiB, b"\0" * (64 * KiB))
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def trickle() -> None:
        while True:
            await asyncio.sleep(0.2)
            writer.write(b"\0")
            await writer.drain()

    task = asyncio.create_task(trickle())
    try:
        cut = await read_response(reader)
    finally:
        task.cancel()
    elapsed = loop.time() - started
    assert (cut.status, cut.json()) == (
        408,
        {"error": "RequestTimeout", "message": "upload body slower than 4096 bytes/s"},
    )
    assert 1.0 < elapsed < 5, elapsed
    writer.close()
    assert await sample(gate.admin_url, "upload_gate_body_timeouts_total", reason="rate") == before + 1
    assert rec.seen == []


async def test_declared_lengths_do_not_grow_the_gate_process(
    tmp_path: Path, upstream: Upstream, fresh_dsn: str
) -> None:
    rec, url = upstream
    env = process_env(tmp_path, url, fresh_dsn) | {
        "GATE_MEMORY_BUDGET_BYTES": "1G",
        "GATE_BODY_IDLE_TIMEOUT": "30",
    }
    async with gate_process(env, tmp_path) as gate:
        body = os.urandom(256 * KiB)
        assert (await upload(gate.url, body))[0] == 200  # warm: the first upload's allocations
        baseline = gate.rss()
        # Eight uploads declare 100 MiB each (800 MiB in all) and send one byte.
        held = [await start_upload(*gate.public, 100 * MiB, b"\x89") for _ in range(8)]
        await asyncio.sleep(1)
        assert (await upload(gate.url, body))[0] == 200  # and the gate still takes uploads
        grown = gate.rss() - baseline
        assert grown < 64 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"
        for _, writer in held:
            writer.close()
    assert [s.body for s in rec.uploads()] == [body, body]
