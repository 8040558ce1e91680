"""Header values whose bytes are not UTF-8, on every path through the real gate, with a raw-socket PDS
that records the exact bytes it receives and answers with the exact bytes it is told to. aiohttp cannot
write such a value back unchanged, so none is ever passed on altered: a request carrying one gets a 400
naming the header, a PDS answer carrying one a 502; valid UTF-8 passes byte for byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate.serve import RunningGate
from tests.integration.conftest import write_config
from tests.support import images
from tests.support.boot import gate_env, in_process
from tests.support.raw_http import RawResponse, read_response, request_head
from tests.support.raw_pds import RawPds, raw_pds
from tests.support.scrape import sample
from tests.support.tokens import ALICE_BEARER

NOT_UTF8 = b"a\xff\xfeb"  # Latin-1 "ÿþ" between ASCII: not UTF-8
UTF8 = "café".encode()
WS_HEAD = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
)


@dataclass
class Answering:
    """A script for the raw-socket PDS: answers every request with ``header`` among its headers (a 101
    to a websocket handshake, else a 200), and keeps the connection until the gate closes it."""

    header: bytes = b"X-Note: " + UTF8

    async def __call__(self, pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if b"upgrade: websocket" in head.lower():
            status = b"101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
            writer.write(b"HTTP/1.1 " + status + b"\r\nSec-WebSocket-Accept: x\r\n" + self.header)
            writer.write(b"\r\n\r\n")
        else:
            body = b'{"blob":{}}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + self.header)
            writer.write(b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        return True


@pytest.fixture
async def pds() -> AsyncIterator[tuple[RawPds, Answering]]:
    answering = Answering()
    async with raw_pds(answering) as raw:
        yield raw, answering


@pytest.fixture
async def gate(tmp_path: Path, fresh_dsn: str, pds: tuple[RawPds, Answering]) -> AsyncIterator[RunningGate]:
    env = gate_env(pds[0].url, fresh_dsn, *write_config(tmp_path), tmp_path / "var")
    async with in_process(env) as running:
        yield running


async def send(gate: RunningGate, head: bytes, body: bytes = b"") -> RawResponse:
    reader, writer = await asyncio.open_connection(*gate.public)
    try:
        writer.write(head + body)
        await writer.drain()
        if b"Upgrade: websocket" in head:  # a 101 has no body and is followed by the tunnel: its head only
            first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = first.lower().split(b"\r\n")
            length = next((int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length:")), 0)
            return await read_response(asyncio_reader(first + await reader.readexactly(length)))
        return await read_response(reader)
    finally:
        writer.close()


def asyncio_reader(data: bytes) -> asyncio.StreamReader:
    """Bytes already read, as a stream that ends after them."""
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def head(method: str, target: bytes, extra: bytes, length: int | None = None) -> bytes:
    """A request head with the raw header lines ``extra`` (each ending in CRLF) before its end."""
    lines = request_head(method, target, {"Host": "pds.example.com"})[:-2] + extra
    if length is not None:
        lines += b"Content-Length: %d\r\nAuthorization: %s\r\n" % (length, ALICE_BEARER.encode())
    return lines + b"\r\n"


PATHS = {
    "passthrough": lambda extra: head("GET", b"/xrpc/app.bsky.actor.getProfile?actor=a", extra),
    "upload": lambda extra: head("POST", b"/xrpc/com.atproto.repo.uploadBlob", extra, len(images.jpeg())),
    "websocket": lambda extra: head("GET", b"/xrpc/com.atproto.sync.subscribeRepos", WS_HEAD + extra),
}


def body_for(path: str) -> bytes:
    return images.jpeg() if path == "upload" else b""


@pytest.mark.parametrize("path", PATHS)
async def test_a_request_header_that_is_not_utf8_is_a_400_naming_it_and_reaches_no_pds(
    gate: RunningGate, pds: tuple[RawPds, Answering], path: str
) -> None:
    raw, _ = pds
    before = await sample(gate.admin_url, "upload_gate_refused_headers_total", reason="not_utf8")
    answer = await send(gate, PATHS[path](b"X-Client-Note: " + NOT_UTF8 + b"\r\n"), body_for(path))
    assert (answer.status, answer.json()) == (
        400,
        {"error": "InvalidRequest", "message": "The value of header X-Client-Note is not UTF-8"},
    )
    assert raw.heads == []  # neither altered nor dropped on the way: not sent at all
    assert await sample(gate.admin_url, "upload_gate_refused_headers_total", reason="not_utf8") == before + 1


@pytest.mark.parametrize("path", PATHS)
async def test_utf8_header_values_cross_both_ways_byte_for_byte(
    gate: RunningGate, pds: tuple[RawPds, Answering], path: str
) -> None:
    raw, _ = pds
    answer = await send(gate, PATHS[path](b"X-Client-Note: " + UTF8 + b"\r\n"), body_for(path))
    assert answer.status == (101 if path == "websocket" else 200)
    [seen] = raw.heads
    assert b"\r\nX-Client-Note: " + UTF8 + b"\r\n" in seen
    # read_response decodes the head as Latin-1: the UTF-8 bytes arrive unchanged.
    assert answer.headers["x-note"] == UTF8.decode("latin-1")


@pytest.mark.parametrize("path", PATHS)
async def test_a_pds_answer_header_that_is_not_utf8_is_a_502_never_relayed_altered(
    gate: RunningGate, pds: tuple[RawPds, Answering], path: str
) -> None:
    raw, answering = pds
    answering.header = b"X-Note: " + NOT_UTF8
    before = await sample(gate.admin_url, "upload_gate_upstream_errors_total", kind="bad_header")
    answer = await send(gate, PATHS[path](b""), body_for(path))
    assert (answer.status, answer.json()) == (
        502,
        {"error": "UpstreamFailure", "message": "The PDS answered with a header value that is not UTF-8"},
    )
    assert "x-note" not in answer.headers
    assert len(raw.heads) == 1  # asked once, never again
    assert await sample(gate.admin_url, "upload_gate_upstream_errors_total", kind="bad_header") == before + 1
