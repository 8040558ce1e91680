"""Websockets through the gate: the client's handshake reaches the PDS, and after its 101 the bytes
pass both ways untouched — in order, intact, closes end to end, back-pressure bounded, junk refused by
the PDS, never a raw HTTP connection to the PDS without a 101."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import struct
from pathlib import Path

import aiohttp
import pytest

from gate.proxy.listener import CLOSE_GRACE
from tests.integration.conftest import GateFactory, process_env
from tests.support.boot import in_process
from tests.support.raw_http import sha256_of_next
from tests.support.raw_pds import RawPds, answering, raw_pds
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import stalled, until

Upstream = tuple[RecordingUpstream, str]
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def _accept(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


async def _raw_handshake(
    url: str, path: str = "/ws", rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A websocket handshake on a plain socket (no library between the test and the bytes): the
    reader, the writer and the answer head."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # fixed before connecting: the kernel does not grow it behind our back
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=64 * 1024)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    if head.startswith(b"HTTP/1.1 101"):
        assert b"\r\nsec-websocket-accept: " + _accept(key).lower() + b"\r\n" in head.lower()
    return reader, writer, head


def _server_frame(payload: bytes, opcode: int = 2) -> bytes:
    """A final, unmasked frame as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes([0x80 | opcode, n]) + payload
    if n < 65536:
        return bytes([0x80 | opcode, 126]) + struct.pack("!H", n) + payload
    return bytes([0x80 | opcode, 127]) + struct.pack("!Q", n) + payload


async def test_frames_arrive_in_order_and_intact_both_ways(start_gate: GateFactory) -> None:
    gate = await start_gate()
    sizes = [0, 1, 125, 126, 65535, 65536, 1_000_003, *range(7, 4000, 97)]
    frames = [os.urandom(n) for n in sizes]
    async with aiohttp.ClientSession() as s, s.ws_connect(gate.url + "/ws", max_msg_size=0) as ws:
        assert (await ws.receive(timeout=5)).data == b"\x00frame-from-upstream"

        async def send() -> None:
            for i, frame in enumerate(frames):
                await ws.send_bytes(frame)
                await ws.send_str(f"text {i} ✓")

        sending = asyncio.create_task(send())
        for i, frame in enumerate(frames):
            assert (await ws.receive(timeout=10)).data == b"echo:" + frame, i
            assert (await ws.receive(timeout=10)).data == f"echo:text {i} ✓"
        await sending


async def test_the_client_handshake_reaches_the_pds(start_gate: GateFactory, upstream: Upstream) -> None:
    """The PDS accepts the client's own key and sub-protocol; a close code travels end to end."""
    rec, _ = upstream
    gate = await start_gate()
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(gate.url + "/ws", protocols=("chat",)) as ws:
            assert ws.protocol is None  # the PDS chose none of them, and the gate does not choose
            await ws.receive(timeout=5)
            await ws.close(code=4001, message=b"client leaves")
        async with s.ws_connect(gate.url + "/ws") as ws:
            await ws.receive(timeout=5)
            await ws.send_str("close:4002")
            closing = await ws.receive(timeout=5)
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4002
            assert closing.extra == "bye"
    await until("both closed at the PDS", lambda: len(rec.ws_closed) == 2, 5)
    assert rec.ws_closed[0] == 4001  # the client's own code, not one the gate chose


async def test_a_dropped_client_closes_the_pds_side(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    reader, writer, head = await _raw_handshake(gate.url)
    assert head.startswith(b"HTTP/1.1 101")
    assert await reader.readexactly(len(_server_frame(b"\x00frame-from-upstream"))) == _server_frame(
        b"\x00frame-from-upstream"
    )
    writer.transport.abort()  # no close frame, no FIN: a reset
    await until("the PDS's side closed", lambda: len(rec.ws_closed) == 1, 5)


async def test_junk_after_the_upgrade_is_refused_by_the_pds(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    """Bytes that are not frames reach the PDS, whose websocket refuses them and closes: so does the
    gate's side, and the gate goes on serving."""
    rec, _ = upstream
    gate = await start_gate()
    reader, writer, head = await _raw_handshake(gate.url)
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(b"\xff" * 64 + b"GET /xrpc/_health HTTP/1.1\r\nHost: x\r\n\r\n")
    rest = await asyncio.wait_for(reader.read(), 5)  # to EOF: the connection is closed
    # The greeting, then the PDS's close frame: 1002, protocol error. No HTTP answer from anyone.
    assert rest == _server_frame(b"\x00frame-from-upstream") + _server_frame(
        struct.pack("!H", 1002), opcode=8
    )
    writer.close()
    await until("the PDS's side closed", lambda: len(rec.ws_closed) == 1, 5)
    async with aiohttp.ClientSession() as s, s.get(gate.url + "/xrpc/_health") as r:
        assert r.status == 200


async def test_a_frame_of_any_size_is_the_pds_to_refuse(start_gate: GateFactory, upstream: Upstream) -> None:
    """A frame announcing a terabyte is not collected by the gate: its bytes stream on, and the PDS
    (16 MB limit here) refuses it with 1009."""
    rec, _ = upstream
    gate = await start_gate()
    reader, writer, head = await _raw_handshake(gate.url)
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 2**40) + b"\0\0\0\0")
    with contextlib.suppress(ConnectionError):
        for _ in range(32):  # 32 MB of it, as long as the connection takes them
            writer.write(b"\1" * (1024 * 1024))
            await asyncio.wait_for(writer.drain(), 5)
    # The PDS's 1009 close frame, then the end (a reset, if the gate closes with our bytes unread).
    with contextlib.suppress(ConnectionError):
        rest = await asyncio.wait_for(reader.read(), 5)
        assert rest.endswith(_server_frame(struct.pack("!H", 1009), opcode=8))
    await until("the PDS's side closed", lambda: len(rec.ws_closed) == 1, 5)
    writer.close()
    async with aiohttp.ClientSession() as s, s.get(gate.url + "/xrpc/_health") as r:
        assert r.status == 200


async def test_a_client_that_stops_reading_stops_the_pds(start_gate: GateFactory, upstream: Upstream) -> None:
    """The gate does not buffer for a slow reader: the PDS's sends stall once the TCP windows and the
    gate's bounded buffers are full, and resume, all bytes intact, when the client reads again."""
    rec, _ = upstream
    gate = await start_gate()
    count, size = 160, 1024 * 1024
    reader, writer, head = await _raw_handshake(gate.url, rcvbuf=64 * 1024)
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(_client_frame(f"send:{count}:{size}".encode()))
    await until("the PDS sending", lambda: rec.ws_sent > 0, 5)
    stalled_at = await stalled(lambda: rec.ws_sent)
    # Kernel buffers on both hops (loopback autotuning: up to ~40 MB here) and the gate's own (< 1 MB):
    # far from the 160 MB a relay without back-pressure would have taken.
    assert stalled_at < count * size // 3, stalled_at
    expected = hashlib.sha256(_server_frame(b"\x00frame-from-upstream"))
    for i in range(count):
        expected.update(_server_frame(bytes([i % 256]) * size))
    total = len(_server_frame(b"\x00frame-from-upstream")) + count * len(_server_frame(b"x" * size))
    assert await sha256_of_next(reader, total) == expected.digest()
    writer.close()


def _switch(head: bytes) -> bytes:
    """A PDS's 101 for the handshake ``head``."""
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + _accept(key) + b"\r\n\r\n"
    )


@pytest.mark.parametrize("then_close", [False, True], ids=["stays", "closes-at-once"])
async def test_early_frames_in_the_101_packet_are_relayed(start_gate: GateFactory, then_close: bool) -> None:
    """The PDS's first frames in the same write as its 101 reach the client, even when the PDS closes
    right after them."""

    async def switch(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_switch(head) + _server_frame(b"first") + _server_frame(b"second"))
        await writer.drain()
        return not then_close

    async with raw_pds(switch) as pds:
        gate = await start_gate(GATE_UPSTREAM=pds.url)
        reader, writer, head = await _raw_handshake(gate.url, "/xrpc/com.atproto.sync.subscribeRepos")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"\r\nSec-WebSocket-Accept: " in head  # the PDS's own spelling of the name
        expected = _server_frame(b"first") + _server_frame(b"second")
        assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
        if then_close:
            assert await asyncio.wait_for(reader.read(), 5) == b""  # and then the end
        writer.close()


async def test_a_pds_that_stops_reading_stops_the_client(start_gate: GateFactory) -> None:
    """Back-pressure the other way: the client's writes stall once the PDS stops reading."""
    stop = asyncio.Event()

    async def switch(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_switch(head))
        await stop.wait()  # reads nothing until the test ends
        return False

    async with raw_pds(switch) as pds:
        gate = await start_gate(GATE_UPSTREAM=pds.url)
        _, writer, head = await _raw_handshake(gate.url)
        assert head.startswith(b"HTTP/1.1 101")
        frame = _client_frame(os.urandom(1024 * 1024), opcode=2)
        pushed = 0
        with contextlib.suppress(TimeoutError):
            while pushed < 160 * len(frame):
                writer.write(frame)
                await asyncio.wait_for(writer.drain(), 2)
                pushed += len(frame)
        # Kernel buffers on both hops, and the gate's own bounded buffers: far from 160 MB.
        assert pushed < 160 * len(frame) // 3, pushed
        stop.set()
        writer.transport.abort()


async def test_a_refusal_comes_back_and_its_connection_is_closed(start_gate: GateFactory) -> None:
    """A PDS that does not switch protocols answers the client itself; the gate's connection to it
    carries nothing more (a client must never get a raw HTTP connection to the PDS)."""
    body = b'{"error":"InvalidRequest","message":"no"}'

    refusal = (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nX-Pds: yes\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )

    async with raw_pds(answering(refusal)) as pds:  # and it reads on, for whatever else comes
        gate = await start_gate(GATE_UPSTREAM=pds.url)
        reader, writer, head = await _raw_handshake(gate.url, "/xrpc/com.atproto.sync.subscribeRepos")
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"X-Pds: yes" in head
        assert await reader.readexactly(len(body)) == body
        writer.write(
            b"POST /xrpc/com.atproto.repo.uploadBlob HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        )
        await until("the PDS's end of the connection", lambda: pds.ended == 1, 5)
        assert pds.leftovers == [b""] and len(pds.heads) == 1  # EOF: nothing followed the handshake
        writer.close()


async def test_a_handshake_with_a_body_is_refused(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    async with (
        aiohttp.ClientSession() as s,
        s.post(gate.url + "/ws", data=b"x", headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as r,
    ):
        assert r.status == 400 and (await r.json())["error"] == "InvalidRequest"
    assert rec.seen == []


async def test_a_stopping_gate_closes_open_websockets(
    tmp_path: Path, upstream: Upstream, fresh_dsn: str
) -> None:
    """A websocket never ends by itself: when the gate stops, both sides are closed once the drain and
    aiohttp's grace (``CLOSE_GRACE``) are over — the stop is not held by them."""
    rec, url = upstream
    env = process_env(tmp_path, url, fresh_dsn) | {"GATE_DRAIN_TIMEOUT": "0.5"}
    async with aiohttp.ClientSession() as s:
        loop = asyncio.get_running_loop()
        async with in_process(env) as gate:
            ws = await s.ws_connect(gate.url + "/ws")
            assert (await ws.receive(timeout=5)).data == b"\x00frame-from-upstream"
            stopping = loop.time()
        assert loop.time() - stopping < 0.5 + CLOSE_GRACE + 5  # slack for a busy machine, not a hang
        assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await until("the PDS's side closed", lambda: len(rec.ws_closed) == 1, 5)
        await ws.close()


def _client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A final frame as a client sends it, masked (with a zero mask: the bytes stay as they are)."""
    head = _server_frame(payload, opcode)[: -len(payload) or None]
    return head[:1] + bytes([head[1] | 0x80]) + head[2:] + b"\0\0\0\0" + payload
