"""HTTP/1.1 over a bare socket, for requests an HTTP client would normalise (absolute-form targets,
fragments, backslashes) or send too politely (bodies that trickle, stop, or never come)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names; the last value wins
    body: bytes

    def json(self) -> Any:  # parsed JSON, as httpx's Response.json() gives it
        return json.loads(self.body)


def request_head(method: str, target: bytes, headers: dict[str, str]) -> bytes:
    lines = [method.encode() + b" " + target + b" HTTP/1.1"]
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def read_response(reader: asyncio.StreamReader, timeout: float = 10) -> RawResponse:
    """One response (a Content-Length body, or up to the close)."""
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()
    return RawResponse(int(status_line.split()[1]), headers, body)


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True when the peer closes (or resets) the connection within ``timeout``, sending nothing."""
    try:
        async with asyncio.timeout(timeout):
            return await reader.read(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def exchange(
    host: str, port: int, method: str, target: bytes, headers: dict[str, str], body: bytes = b""
) -> RawResponse:
    """Send one request on a fresh connection and read its answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request_head(method, target, headers) + body)
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


UPLOAD = b"/xrpc/com.atproto.repo.uploadBlob"


def upload_head(length: int | None, extra: dict[str, str] | None = None) -> bytes:
    """An upload's request head (a garbage token: these refusals never depend on it)."""
    headers = {"Host": "pds.example.com", "Authorization": "Bearer garbage", "Content-Type": "image/png"}
    headers |= {"Content-Length": str(length)} if length is not None else {"Transfer-Encoding": "chunked"}
    return request_head("POST", UPLOAD, headers | (extra or {}))


async def start_upload(
    host: str, port: int, declared: int, sent: bytes = b"", extra: dict[str, str] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection, declare ``declared`` body bytes and send only ``sent`` of them."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(upload_head(declared, extra) + sent)
    await writer.drain()
    return reader, writer


async def sha256_of_next(reader: asyncio.StreamReader, count: int, timeout: float = 10) -> bytes:
    """The SHA-256 of the next ``count`` bytes from ``reader`` (each read within ``timeout``): what a
    relay passed on, checked whole without holding it."""
    got = hashlib.sha256()
    received = 0
    while received < count:
        chunk = await asyncio.wait_for(reader.read(min(1024 * 1024, count - received)), timeout)
        assert chunk, f"the connection ended after {received} of {count} bytes"
        got.update(chunk)
        received += len(chunk)
    return got.digest()
