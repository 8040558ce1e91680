"""A stand-in PDS on a bare socket, for framing the aiohttp stand-in (tests/support/upstream.py) cannot
produce: it records every request head as received (a declared body is read, not kept), and what a
connection sent after its last whole request before it ended, and answers with whatever bytes a script
writes — interim 1xx answers, chunked or unframed bodies, malformed heads, connections closed
mid-answer — or, until told to, accepts no connection at all (``unaccepting``) or refuses every one
(``unlistening``).

And a front to compare against: the gate's ``Upstream.passthrough`` behind the gate's public listener (no
routing, no middleware), with the lean path on or off, so a test sends the same request through both."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from yarl import URL

from gate.answers import on_prepare
from gate.app import xrpc_error
from gate.errors import XrpcError
from gate.proxy.drain import Drain
from gate.proxy.forwarded import Forwarded, TrustedProxies
from gate.proxy.front import Front
from gate.proxy.listener import PublicListener
from gate.proxy.target import origin_form
from gate.proxy.upstream import Upstream

# (the PDS, the request's index, its head, the connection's writer) -> keep the connection open?
Script = Callable[["RawPds", int, bytes, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class RawPds:
    script: Script
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    ended: int = 0  # connections the gate closed (EOF seen while waiting for a request)
    # For each of those (closed, not reset): what it had sent past its last whole request (b"": nothing).
    leftovers: list[bytes] = field(default_factory=list)
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    self.heads.append(head)
                    await reader.readexactly(_declared(head))  # a body is read past, so a head follows
                except asyncio.IncompleteReadError as exc:
                    self.ended += 1
                    self.leftovers.append(exc.partial)
                    return
                except ConnectionError:
                    self.ended += 1
                    return
                if not await self.script(self, len(self.heads) - 1, head, writer):
                    return
        finally:
            writer.close()


def _declared(head: bytes) -> int:
    """A request's declared body length (0 without one)."""
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


async def _closed(server: asyncio.Server) -> None:
    """Stop listening; wait a moment for the connections to end (a test's own may still be open)."""
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 1)


@contextlib.asynccontextmanager
async def raw_pds(script: Script) -> AsyncIterator[RawPds]:
    pds = RawPds(script)
    server = await asyncio.start_server(pds.serve, "127.0.0.1", 0)
    pds.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield pds
    finally:
        await _closed(server)


@contextlib.asynccontextmanager
async def unaccepting(script: Script) -> AsyncIterator[tuple[RawPds, Callable[[], Awaitable[None]]]]:
    """A PDS that accepts no connection until ``accept()`` is awaited, then serves ``script``.

    Its listening socket's queue is full of connections it never accepts, so the kernel drops a new
    connection's SYN (Linux does, whatever tcp_syncookies says) and a connect waits until the
    connecting side gives up: a PDS too busy to accept, or a host that drops packets. A non-routable
    address would be the other way, but what it does depends on the machine's network (here one was
    answered by something, another refused at once); a full queue on loopback behaves the same anywhere.
    """
    pds = RawPds(script)
    loop = asyncio.get_running_loop()
    listening = socket.socket()
    listening.setblocking(False)
    listening.bind(("127.0.0.1", 0))
    listening.listen(0)
    address = listening.getsockname()
    pds.url = f"http://127.0.0.1:{address[1]}"
    fillers: list[socket.socket] = []
    server: asyncio.Server | None = None
    try:
        while True:  # until a connect waits: the queue is full (one connection on Linux, for listen(0))
            if len(fillers) == 8:
                raise RuntimeError("the listening socket's queue never filled: no SYN was dropped")
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            try:
                async with asyncio.timeout(0.2):
                    await loop.sock_connect(filler, address)
            except TimeoutError:
                break

        async def accept() -> None:
            nonlocal server
            for filler in fillers:  # each queued one is accepted, reads EOF and is counted in ``ended``
                filler.close()
            server = await asyncio.start_server(pds.serve, sock=listening)

        yield pds, accept
    finally:
        for filler in fillers:
            filler.close()
        if server is None:
            listening.close()
        else:
            await _closed(server)


@contextlib.asynccontextmanager
async def unlistening(script: Script) -> AsyncIterator[tuple[RawPds, Callable[[], Awaitable[None]]]]:
    """A PDS that refuses every connection until ``listen()`` is awaited, then serves ``script``: its
    port is bound and not listening, so the kernel answers a connect with a reset (ECONNREFUSED), a
    PDS that is down, and no other socket can take the port meanwhile."""
    pds = RawPds(script)
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))
    pds.url = f"http://127.0.0.1:{bound.getsockname()[1]}"
    server: asyncio.Server | None = None

    async def listen() -> None:
        nonlocal server
        server = await asyncio.start_server(pds.serve, sock=bound)  # asyncio calls listen() on it

    try:
        yield pds, listen
    finally:
        if server is None:
            bound.close()
        else:
            await _closed(server)


def answering(answer: bytes, keep: bool = True) -> Script:
    """A script that answers every request with the same bytes."""

    async def script(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer)
        await writer.drain()
        return keep

    return script


@contextlib.asynccontextmanager
async def front(
    pds_url: str, *, lane: bool, timeout: float = 5.0, connect_timeout: float = 2.0
) -> AsyncIterator[tuple[str, Upstream]]:
    """``Upstream.passthrough`` served on a free port as the gate serves it (its answers' last word and
    its XRPC errors as the gate's app gives them), through the gate's public listener: with ``lane``, a
    plain GET is read and relayed by the front (``gate.proxy.front``) on the lean client, and any other
    request by aiohttp's server on the lean client (a GET without a body) or aiohttp's; without, every
    request by aiohttp's server and client."""
    upstream = Upstream(URL(pds_url), connect_timeout=connect_timeout, timeout=timeout, lane=lane)
    await upstream.start()

    async def handle(request: web.Request) -> web.StreamResponse:
        fwd = Forwarded("127.0.0.1", "127.0.0.1", "http")
        try:
            return await upstream.passthrough(request, fwd, origin_form(request.raw_path))
        except XrpcError as exc:
            return xrpc_error(exc)

    app = web.Application(handler_args={"auto_decompress": False})
    app.on_response_prepare.append(on_prepare)
    app.router.add_route("*", "/{tail:.*}", handle)
    drain = Drain(1.0)
    lane_pass = upstream.lane_pass
    passes = Front(lane_pass, TrustedProxies(()), drain) if lane_pass is not None else None
    listener = PublicListener(app, drain, header_timeout=10.0, stop_bound=2.0, front=passes)
    host, port = await listener.start("127.0.0.1", 0)
    try:
        yield f"http://{host}:{port}", upstream
    finally:
        await listener.close()
        await upstream.close()


async def exchange_raw(url: str, request: bytes, timeout: float = 10) -> bytes:
    """Send raw request bytes and read the raw answer until the server closes (ask with
    ``Connection: close``)."""
    parsed = URL(url)
    reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
    try:
        writer.write(request)
        async with asyncio.timeout(timeout):
            return await reader.read(-1)
    finally:
        writer.close()


def comparable(answer: bytes) -> bytes:
    """The answer without its Date header line (the only line that differs between two runs), and a
    chunked body de-chunked: how a streamed body is cut into chunks follows the reads' timing (it is
    the connection's framing, not the message), so two relays of one answer are compared on the bytes
    each chunk carried (up to where a cut answer stops)."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunked(body)
    return b"\r\n".join(lines) + sep + body


def _dechunked(body: bytes) -> bytes:
    out, at = [], 0
    while True:
        end = body.find(b"\r\n", at)
        if end < 0:
            break
        size = int(body[at:end], 16)
        out.append(body[end + 2 : end + 2 + size])
        if size == 0 or end + 2 + size > len(body):
            out.append(b"<end>" if size == 0 else b"<cut>")
            break
        at = end + 2 + size + 2
    return b"".join(out)
