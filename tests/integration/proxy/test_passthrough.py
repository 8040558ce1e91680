"""Everything that is not an upload passes through: streamed, headers handled, websockets bridged."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import aiohttp
from yarl import URL

from tests.integration.conftest import GateFactory
from tests.support.raw_http import exchange
from tests.support.upstream import RecordingUpstream

Upstream = tuple[RecordingUpstream, str]


async def test_get_passes_through_with_host_and_raw_path(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    path = "/xrpc/com.atproto.sync.getBlob?did=did:plc:abc&cid=bafy%2Fx"
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            URL(gate.url + path, encoded=True),  # the client must not re-encode it either
            headers={"Host": "pds.example.com", "DPoP": "proof", "Authorization": "DPoP tok"},
        ) as r,
    ):
        assert r.status == 200
        assert (await r.json())["path"] == path
    [seen] = rec.seen
    assert seen.raw_path == path
    assert seen.headers["Host"] == "pds.example.com"
    assert seen.headers["DPoP"] == "proof" and seen.headers["Authorization"] == "DPoP tok"


async def test_hop_by_hop_headers_are_dropped(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            gate.url + "/x",
            headers={"Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "1", "TE": "trailers"},
        ) as r,
    ):
        assert r.status == 200
    [seen] = rec.seen
    assert "X-Secret-Hop" not in seen.headers and "TE" not in seen.headers


async def test_forwarded_headers_overwritten_for_untrusted_client(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_TRUSTED_PROXIES="")
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            gate.url + "/x",
            headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Real-IP": "6.6.6.6"},
        ) as r,
    ):
        assert r.status == 200
    [seen] = rec.seen
    assert seen.headers["X-Forwarded-For"] == "127.0.0.1"
    assert seen.headers["X-Forwarded-Proto"] == "http"
    assert "X-Real-IP" not in seen.headers


async def test_forwarded_headers_kept_from_trusted_proxy(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_TRUSTED_PROXIES="127.0.0.1/32")
    async with (
        aiohttp.ClientSession() as s,
        s.get(gate.url + "/x", headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}) as r,
    ):
        assert r.status == 200
    [seen] = rec.seen
    assert seen.headers["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"
    assert seen.headers["X-Forwarded-Proto"] == "https"


async def test_chunked_request_body_streams_through(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    payload = b"".join(bytes([i % 251]) * 10_000 for i in range(300))  # 3 MB, chunked

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    async with aiohttp.ClientSession() as s:
        async with s.post(gate.url + "/xrpc/com.atproto.repo.importRepo", data=chunks()) as r:
            assert r.status == 200
            assert (await r.json())["sha256"] == hashlib.sha256(payload).hexdigest()
    [seen] = rec.seen
    assert seen.body == payload


async def test_streamed_response_arrives_incrementally(start_gate: GateFactory, upstream: Upstream) -> None:
    gate = await start_gate()
    async with aiohttp.ClientSession() as s, s.get(gate.url + "/stream") as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        first = await asyncio.wait_for(r.content.readline(), 5)
        assert first == b"data: 0\n"
        rest = await r.read()
    assert rest.count(b"data: ") == 4


async def test_websocket_is_bridged(start_gate: GateFactory) -> None:
    gate = await start_gate()
    async with aiohttp.ClientSession() as s, s.ws_connect(gate.url + "/ws") as ws:
        first = await ws.receive(timeout=5)
        assert first.data == b"\x00frame-from-upstream"
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "echo:hello"
        await ws.send_bytes(b"\x01\x02")
        assert (await ws.receive(timeout=5)).data == b"echo:\x01\x02"


async def test_get_on_upload_route_passes_through(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    async with aiohttp.ClientSession() as s, s.get(gate.url + "/xrpc/com.atproto.repo.uploadBlob") as r:
        assert r.status == 200
    assert len(rec.seen) == 1


async def test_admin_surfaces_are_not_on_the_public_listener(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    gate = await start_gate()
    async with aiohttp.ClientSession() as s:
        async with s.get(gate.url + "/metrics") as r:
            assert "upload_gate" not in await r.text()  # proxied to the PDS, which has no such page
        async with s.get(gate.admin_url + "/metrics") as r:
            assert "upload_gate_decisions_total" in await r.text()
        async with s.get(gate.admin_url + "/healthz") as r:
            assert r.status == 200
        async with s.get(gate.admin_url + "/readyz") as r:
            body = await r.json()
            assert r.status == 200 and body["ready"] is True and "policy" in body["checks"]
    assert [s.raw_path for s in rec.seen] == ["/metrics"]


async def test_a_small_answer_comes_back_whole_with_the_pds_headers(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    """Small answers are read whole and sent in one write: the status, the PDS's headers and the bytes
    are unchanged, for GET and for HEAD (the PDS's Content-Length, no body)."""
    rec, _ = upstream
    rec.status = 401
    rec.extra_headers = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "nonce-1"}
    gate = await start_gate()
    path = "/xrpc/app.bsky.actor.getPreferences"
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.get(gate.url + path) as r:
            body = await r.read()
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == 'DPoP error="use_dpop_nonce"'
            assert r.headers["DPoP-Nonce"] == "nonce-1"
            assert r.headers["Content-Type"] == "application/json; charset=utf-8"
            assert "Access-Control-Allow-Origin" not in r.headers and "Server" not in r.headers
        assert json.loads(body) == {"path": path, "len": 0, "sha256": hashlib.sha256(b"").hexdigest()}
        assert r.headers["Content-Length"] == str(len(body))
        async with s.head(gate.url + path) as r:
            assert r.status == 401
            assert r.headers["DPoP-Nonce"] == "nonce-1"
            assert r.headers["Content-Length"] == str(len(body))
            assert await r.read() == b""


async def test_the_gate_adds_no_header_the_client_did_not_send(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    """aiohttp's client adds Accept, Accept-Encoding and User-Agent (and a Content-Type to a body) when a
    request lacks them; the PDS gets what the client sent, whether it sent them or not."""
    rec, _ = upstream
    gate = await start_gate()
    bare = await exchange(
        *gate.public, "POST", b"/xrpc/com.atproto.repo.putRecord", {"Host": "h", "Content-Length": "2"}, b"{}"
    )
    assert bare.status == 200
    sent = {
        "Host": "h",
        "Content-Length": "2",
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": "bsky-client/1",
        "Content-Type": "application/json",
    }
    full = await exchange(*gate.public, "POST", b"/xrpc/com.atproto.repo.putRecord", sent, b"{}")
    assert full.status == 200
    first, second = rec.seen
    for name in ("Accept", "Accept-Encoding", "User-Agent", "Content-Type"):
        assert name not in first.headers
        assert second.headers.getall(name) == [sent[name]]
    assert first.body == second.body == b"{}"


async def test_a_slow_pds_is_a_504_at_the_upstream_timeout(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    rec.delay = 3
    gate = await start_gate(GATE_UPSTREAM_TIMEOUT="0.5")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with aiohttp.ClientSession() as s, s.get(gate.url + "/xrpc/_health") as r:
        assert r.status == 504 and (await r.json())["error"] == "UpstreamTimeout"
    assert (
        0.5 <= loop.time() - started < 2
    )  # the timeout and one tick of its sweep (0.05 s), not the PDS's 3 s
    assert len(rec.seen) == 1  # never retried
