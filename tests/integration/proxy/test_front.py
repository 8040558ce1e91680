"""The lean path's front (gate.proxy.front) on the gate's real port: plain GETs are read and relayed by the
public listener itself, and whatever follows them on the same connection — an upload above all — is
aiohttp's and the app's, judged as ever. Byte-for-byte comparisons with aiohttp's path are in
test_lane.py and test_lane_failures.py; what plain_get takes is in tests/unit/proxy/test_front_plain.py."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator

from tests.integration.conftest import GateFactory
from tests.support import images
from tests.support.raw_http import closed_by_peer, read_response, request_head
from tests.support.raw_pds import RawPds, answering, comparable, exchange_raw, front, raw_pds
from tests.support.upstream import RecordingUpstream

Upstream = tuple[RecordingUpstream, str]
BANKED = images.noise_png(seed=11)
BANKS = {"blocklist": f"sha256,{hashlib.sha256(BANKED).hexdigest()},banked"}
REJECTED = {"error": "BlobRejected", "message": "rejected by policy"}
HEALTH = request_head("GET", b"/xrpc/_health", {"Host": "pds.example.com"})
UPLOAD = request_head(
    "POST",
    b"/xrpc/com.atproto.repo.uploadBlob",
    {
        "Host": "pds.example.com",
        "Authorization": "Bearer t",
        "Content-Type": "image/png",
        "Content-Length": str(len(BANKED)),
    },
)
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


@contextlib.asynccontextmanager
async def _connected(
    start_gate: GateFactory,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """One connection to a gate that has the banked picture in its bank."""
    gate = await start_gate(banks=BANKS)
    reader, writer = await asyncio.open_connection(*gate.public)
    try:
        yield reader, writer
    finally:
        writer.close()


async def test_an_upload_after_plain_gets_on_one_connection_is_judged(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    async with _connected(start_gate) as (reader, writer):
        for _ in range(2):
            writer.write(HEALTH)
            assert (await read_response(reader)).status == 200
        writer.write(UPLOAD + BANKED)
        refused = await read_response(reader)
        assert (refused.status, refused.json()) == (400, REJECTED)
        writer.write(HEALTH)  # the connection, now aiohttp's, goes on
        assert (await read_response(reader)).status == 200
    assert rec.uploads() == []  # the banked picture never reached the PDS
    assert [s.raw_path for s in rec.seen if s.method == "GET"] == ["/xrpc/_health"] * 3


async def test_pipelined_requests_are_answered_in_order_and_the_upload_is_judged(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    async with _connected(start_gate) as (reader, writer):
        writer.write(HEALTH + HEALTH + UPLOAD + BANKED + HEALTH)  # one write: all four at once
        answers = [await read_response(reader) for _ in range(4)]
    assert [a.status for a in answers] == [200, 200, 400, 200]
    assert answers[2].json() == REJECTED
    assert rec.uploads() == []


async def test_the_lean_path_off_gives_the_same_answer_and_sends_the_same_request(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    lean = await start_gate()
    plain = await start_gate(GATE_LEAN_PASSTHROUGH="off")
    request = request_head(
        "GET",
        b"/xrpc/app.bsky.actor.getProfile?actor=alice.test",
        {"Host": "pds.example.com", "Accept": "*/*", "x-client": "t", "Connection": "close"},
    )
    answers = []
    for gate in (lean, plain):
        host, port = gate.public
        answers.append(comparable(await exchange_raw(f"http://{host}:{port}", request)))
    assert answers[0] == answers[1] and answers[0].startswith(b"HTTP/1.1 200 OK\r\n")
    by_lean, by_plain = rec.seen
    assert list(by_lean.headers.items()) == list(by_plain.headers.items())
    assert by_lean.raw_path == by_plain.raw_path == "/xrpc/app.bsky.actor.getProfile?actor=alice.test"


async def test_a_plain_get_in_flight_when_the_gate_stops_is_answered_and_idle_ones_closed() -> None:
    async def slow(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.5)
        writer.write(OK)
        await writer.drain()
        return True

    async with raw_pds(slow) as pds, contextlib.AsyncExitStack() as stack:
        url, _ = await stack.enter_async_context(front(pds.url, lane=True))
        host, port = url.removeprefix("http://").split(":")
        idle_reader, idle = await asyncio.open_connection(host, int(port))
        idle.write(HEALTH)
        assert (await read_response(idle_reader)).status == 200  # then idle, kept alive
        busy_reader, busy = await asyncio.open_connection(host, int(port))
        busy.write(HEALTH)  # a keep-alive request
        await asyncio.sleep(0.2)
        await stack.aclose()  # the gate stops while the PDS is still answering
        answer = await read_response(busy_reader)
        # Answered whole, and told the connection ends with it (as aiohttp's path does when stopping).
        assert (answer.status, answer.body, answer.headers.get("connection")) == (
            200,
            b'{"ok":true}',
            "close",
        )
        assert await closed_by_peer(busy_reader, 1)
        assert await closed_by_peer(idle_reader, 1)
        idle.close()
        busy.close()


async def test_a_client_gone_mid_download_ends_the_pds_connection_and_the_gate_goes_on() -> None:
    cut = asyncio.Event()

    async def endless(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if n > 0:  # the next client's request
            writer.write(OK)
            await writer.drain()
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
        try:
            while True:
                writer.write(bytes(65536))
                await writer.drain()
        except ConnectionError:
            cut.set()  # the gate closed its connection to the PDS
        return False

    async with raw_pds(endless) as pds, front(pds.url, lane=True) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(HEALTH)
        await reader.readexactly(1 << 20)
        writer.close()  # gone, 1 MB into 100 GB
        async with asyncio.timeout(5):
            await cut.wait()
        assert (await exchange_raw(url, HEALTH[:-2] + b"Connection: close\r\n\r\n")).endswith(b'{"ok":true}')


async def test_a_half_closed_client_still_gets_its_answer() -> None:
    async with raw_pds(answering(OK)) as pds, front(pds.url, lane=True) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(HEALTH)
        writer.write_eof()  # sent its request and shut its side, as `nc -N` does
        async with asyncio.timeout(5):
            answer = await reader.read(-1)  # the answer, then the gate's close
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'{"ok":true}')
