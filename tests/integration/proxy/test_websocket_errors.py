"""A websocket handshake the PDS does not complete, through the real gate: a PDS that accepts no
connection, or accepts and never answers, is a 504; one that refuses the connection, or answers what is
not a handshake, is a 502 (logged with the route and the cause's type: never a header value, nor
anything the client sent). Each is counted in ``upload_gate_upstream_errors_total`` under the kind a
passthrough's failure is (gate/proxy/relayed.py), and the same gate opens the next websocket."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from gate.serve import RunningGate
from tests.integration.conftest import GateFactory
from tests.support.raw_pds import RawPds, raw_pds, unaccepting, unlistening
from tests.support.scrape import sample

ROUTE = "/xrpc/com.atproto.sync.subscribeRepos"
REFUSAL = b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
TIMED_OUT = {"error": "UpstreamTimeout", "message": "The PDS did not answer in time"}
LINGER_0 = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s
FAILED = {"error": "UpstreamFailure", "message": "The PDS could not be reached"}


async def _handshake(gate: RunningGate) -> tuple[int, bytes]:
    """A websocket handshake through the gate: the status and body of its answer."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    headers["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    async with aiohttp.ClientSession() as s, s.get(gate.url + ROUTE, headers=headers) as r:
        return r.status, await r.read()


async def _failed_then_served(
    gate: RunningGate, pds: RawPds, ready: Callable[[], Awaitable[None]], kind: str, within: float
) -> tuple[int, object]:
    """The first handshake's status and JSON body, answered within ``within`` s and counted once as
    ``kind``; then, once ``ready`` has the PDS answering, the same gate relays its refusal."""
    before = await sample(gate.admin_url, "upload_gate_upstream_errors_total", kind=kind)
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await _handshake(gate)
    assert loop.time() - started < within
    assert await sample(gate.admin_url, "upload_gate_upstream_errors_total", kind=kind) == before + 1
    await ready()
    assert await _handshake(gate) == (403, b"{}")
    return status, json.loads(body)


async def _refusing(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(REFUSAL)
    await writer.drain()
    return False


async def test_a_pds_that_does_not_accept_is_a_504_at_the_connect_timeout(start_gate: GateFactory) -> None:
    async with unaccepting(_refusing) as (pds, accept):
        gate = await start_gate(
            GATE_UPSTREAM=pds.url, GATE_UPSTREAM_CONNECT_TIMEOUT="0.3", GATE_UPSTREAM_TIMEOUT="5"
        )
        assert await _failed_then_served(gate, pds, accept, "timeout", within=2.0) == (504, TIMED_OUT)
        assert len(pds.heads) == 1  # the refused handshake only: the one given up on never arrived


async def test_a_pds_that_never_answers_the_handshake_is_a_504(start_gate: GateFactory) -> None:
    mute = asyncio.Event()
    mute.set()

    async def muted(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if mute.is_set():
            await asyncio.sleep(1.5)
            return False
        return await _refusing(pds, n, head, writer)

    async def speak() -> None:
        mute.clear()

    async with raw_pds(muted) as pds:
        gate = await start_gate(GATE_UPSTREAM=pds.url, GATE_UPSTREAM_TIMEOUT="0.3")
        assert await _failed_then_served(gate, pds, speak, "timeout", within=1.5) == (504, TIMED_OUT)
        assert len(pds.heads) == 2  # each handshake sent once: a deadline is never retried


def _logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gate.proxy.upstream"]


async def test_a_pds_that_refuses_the_connection_is_a_502_that_says_so(
    start_gate: GateFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "gate.proxy.upstream")
    async with unlistening(_refusing) as (pds, listen):
        gate = await start_gate(GATE_UPSTREAM=pds.url)
        assert await _failed_then_served(gate, pds, listen, "unreachable", within=5.0) == (502, FAILED)
        assert len(pds.heads) == 1  # the refused handshake only
    assert _logged(caplog) == [f"upstream websocket {ROUTE} failed: ConnectionRefusedError"]


@pytest.mark.parametrize(
    ("answer", "reset", "cause"),
    [
        # h11's type, not its message (which quotes the PDS's bytes)
        (b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n", False, "RemoteProtocolError"),
        (b"SSH-2.0-nope\r\n\r\n", False, "RemoteProtocolError"),
        (b"HTTP/1.1 101 OK\r\nBad Name: x\r\n\r\n", False, "RemoteProtocolError"),
        # an answer h11 reads and the gate does not take (gate.proxy.handshake)
        (b"HTTP/2.0 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", False, "BadAnswer"),
        (b"HTTP/1.1 101 OK\r\n", True, "ConnectionResetError"),  # cut by a reset, not an EOF
    ],
    ids=["cut-short", "not-http", "bad-field", "http/2.0", "reset"],
)
async def test_a_malformed_answer_is_a_502(
    start_gate: GateFactory, caplog: pytest.LogCaptureFixture, answer: bytes, reset: bool, cause: str
) -> None:
    caplog.set_level(logging.WARNING, "gate.proxy.upstream")
    malformed = asyncio.Event()
    malformed.set()

    async def reply(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if not malformed.is_set():
            return await _refusing(pds, n, head, writer)
        writer.write(answer)
        await writer.drain()
        if reset:  # no lingering: the kernel ends the connection with a RST
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
            writer.transport.abort()
        else:
            writer.write_eof()
        return False

    async def mend() -> None:
        malformed.clear()

    async with raw_pds(reply) as pds:
        gate = await start_gate(GATE_UPSTREAM=pds.url)
        assert await _failed_then_served(gate, pds, mend, "unreachable", within=5.0) == (502, FAILED)
        assert len(pds.heads) == 2
    assert _logged(caplog) == [f"upstream websocket {ROUTE} failed: {cause}"]
