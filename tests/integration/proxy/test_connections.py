"""Connections that hog the gate without sending a body: slow request heads (slowloris) and too many
uploads from one address. Bare sockets on the gate's real port."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.integration.conftest import GateFactory
from tests.support.raw_http import closed_by_peer, read_response, request_head, start_upload, upload_head
from tests.support.scrape import sample, settled_sample
from tests.support.upstream import RecordingUpstream

Upstream = tuple[RecordingUpstream, str]
MiB = 1024 * 1024


async def test_a_slow_request_head_is_dropped(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_HEADER_TIMEOUT="1")
    host, port = gate.public
    before = await sample(gate.admin_url, "upload_gate_header_timeouts_total", state="fresh")
    reader, writer = await asyncio.open_connection(host, port)
    head = upload_head(10)

    async def slowloris() -> None:
        for i in range(len(head) - 4):  # never the final blank line
            writer.write(head[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.1)

    task = asyncio.create_task(slowloris())
    try:
        assert await closed_by_peer(reader, 3)  # dropped well before the head could be complete
    finally:
        task.cancel()
        writer.close()
    silent_reader, silent = await asyncio.open_connection(host, port)  # connects, sends nothing
    assert await closed_by_peer(silent_reader, 3)
    silent.close()
    assert await sample(gate.admin_url, "upload_gate_header_timeouts_total", state="fresh") == before + 2
    assert rec.seen == []


async def test_a_kept_alive_connection_idles_past_the_header_timeout(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    """Between requests the keep-alive timer rules: a front proxy's pooled connections are not cut,
    but a later request's head is held to the same deadline."""
    rec, _ = upstream
    gate = await start_gate(GATE_HEADER_TIMEOUT="1")
    host, port = gate.public
    reader, writer = await asyncio.open_connection(host, port)
    health = request_head("GET", b"/xrpc/_health", {"Host": "h"})
    writer.write(health)
    assert (await read_response(reader)).status == 200
    await asyncio.sleep(2)  # idle, twice the header timeout
    writer.write(health)
    assert (await read_response(reader)).status == 200
    before = await sample(gate.admin_url, "upload_gate_header_timeouts_total", state="head")
    writer.write(health[:10])  # a third request starts and stalls
    assert await closed_by_peer(reader, 3)
    writer.close()
    assert await sample(gate.admin_url, "upload_gate_header_timeouts_total", state="head") == before + 1
    assert len(rec.seen) == 2


async def test_the_rest_of_a_body_answered_unread_is_not_a_slow_head(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    """An upload answered before its body is read (here 401, no credentials): the client still sends
    the body, aiohttp drops it, and the connection stays a healthy kept-alive one."""
    rec, _ = upstream
    gate = await start_gate(GATE_HEADER_TIMEOUT="1")
    host, port = gate.public
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        request_head("POST", b"/xrpc/com.atproto.repo.uploadBlob", {"Host": "h", "Content-Length": "300000"})
    )
    assert (await read_response(reader)).status == 401
    for _ in range(3):
        writer.write(b"\0" * 100_000)
        await writer.drain()
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # idle, twice the header timeout
    writer.write(request_head("GET", b"/xrpc/_health", {"Host": "h"}))
    assert (await read_response(reader)).status == 200
    writer.close()
    assert [s.raw_path for s in rec.seen] == ["/xrpc/_health"]


async def test_uploads_per_client_address_are_limited_unread(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_MAX_UPLOADS_PER_IP="2")
    host, port = gate.public
    before = await sample(gate.admin_url, "upload_gate_per_ip_refusals_total")
    client = {"X-Forwarded-For": "198.51.100.7"}  # behind the trusted (loopback) front proxy
    busy = [await start_upload(host, port, MiB, b"\x89", client) for _ in range(2)]
    assert await settled_sample(gate.admin_url, "upload_gate_buffered_bytes", 2) == 2  # both are being read
    # The third upload from that client is refused with nothing of its body sent.
    reader, writer = await start_upload(host, port, MiB, b"", client)
    refused = await read_response(reader)
    writer.close()
    assert (refused.status, refused.json()) == (
        429,
        {"error": "RateLimitExceeded", "message": "Too many uploads in progress from this address"},
    )
    assert refused.headers["retry-after"].isdigit()
    assert await sample(gate.admin_url, "upload_gate_per_ip_refusals_total") == before + 1
    # Another client behind the same proxy has its own slots, and so does the first one once a slot frees.
    other = {"X-Forwarded-For": "198.51.100.8", "Authorization": "Bearer t", "Content-Type": "image/png"}
    async with aiohttp.ClientSession() as s:
        async with s.post(
            gate.url + "/xrpc/com.atproto.repo.uploadBlob", data=b"\0" * 100, headers=other
        ) as r:
            assert r.status == 200
        busy.pop()[1].close()
        assert await settled_sample(gate.admin_url, "upload_gate_buffered_bytes", 1) == 1  # its slot is free
        first = other | client
        async with s.post(
            gate.url + "/xrpc/com.atproto.repo.uploadBlob", data=b"\0" * 100, headers=first
        ) as r:
            assert r.status == 200
    for _, w in busy:
        w.close()
    assert len(rec.uploads()) == 2


async def test_an_untrusted_peer_cannot_pick_its_address(start_gate: GateFactory, upstream: Upstream) -> None:
    """With no trusted proxies, X-Forwarded-For is the client's own claim: the peer address counts."""
    rec, _ = upstream
    gate = await start_gate(GATE_MAX_UPLOADS_PER_IP="2", GATE_TRUSTED_PROXIES="")
    host, port = gate.public
    busy = [
        await start_upload(host, port, MiB, b"\x89", {"X-Forwarded-For": f"192.0.2.{i}"}) for i in range(2)
    ]
    assert await settled_sample(gate.admin_url, "upload_gate_buffered_bytes", 2) == 2
    reader, writer = await start_upload(host, port, MiB, b"", {"X-Forwarded-For": "192.0.2.99"})
    assert (await read_response(reader)).status == 429
    writer.close()
    for _, w in busy:
        w.close()
    assert rec.seen == []


async def test_a_later_head_gets_its_own_whole_deadline(start_gate: GateFactory, upstream: Upstream) -> None:
    """The header clock of a kept-alive connection starts again with each request's first byte: a head
    begun late in the previous one's window is not cut at the previous deadline, only at its own."""
    rec, _ = upstream
    gate = await start_gate(GATE_HEADER_TIMEOUT="2")
    host, port = gate.public
    reader, writer = await asyncio.open_connection(host, port)  # the clock starts: 2 s for a head
    health = request_head("GET", b"/xrpc/_health", {"Host": "h"})
    writer.write(health)
    assert (await read_response(reader)).status == 200
    await asyncio.sleep(1.2)
    writer.write(health[:10])  # a second head starts: its own 2 s, past the first window's end
    await asyncio.sleep(1.4)
    writer.write(health[10:])
    assert (await read_response(reader)).status == 200
    before = await sample(gate.admin_url, "upload_gate_header_timeouts_total", state="head")
    writer.write(health[:10])  # a third head stalls: cut at its own deadline
    assert await closed_by_peer(reader, 4)
    writer.close()
    assert await sample(gate.admin_url, "upload_gate_header_timeouts_total", state="head") == before + 1
    assert len(rec.seen) == 2
