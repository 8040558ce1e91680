"""The tunnel on real loopback connections (no gate around it): an end that stops reading for longer
than the stall bound drops both connections, and the client's lent protocol hears of it; the drop is
logged with the route and the side that stalled, and counted; a shorter pause only holds the bytes
back."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import REGISTRY

from gate.proxy.tunnel import Tunnel
from tests.support.raw_http import sha256_of_next


class _Lent(asyncio.Protocol):
    """Stands for the listener's protocol that lends the client's transport to the tunnel."""

    def __init__(self) -> None:
        self.made: asyncio.Future[asyncio.Transport] = asyncio.get_running_loop().create_future()
        self.lost = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.made.set_result(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()


@dataclass
class _Stand:
    """The two far ends (a client and a PDS, as plain streams) and the tunnel between them."""

    client: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    pds: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    tunnel: Tunnel
    lent: _Lent
    pds_conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _stand(stall: float, client_rcvbuf: int) -> AsyncIterator[_Stand]:
    loop = asyncio.get_running_loop()
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def pds_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    pds_server = await asyncio.start_server(pds_accept, "127.0.0.1", 0)
    lent = _Lent()
    gate_server = await loop.create_server(lambda: lent, "127.0.0.1", 0)
    try:
        sock = socket.socket()
        # Fixed before connecting: the kernel does not grow it behind our back.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, client_rcvbuf)
        sock.setblocking(False)
        await loop.sock_connect(sock, gate_server.sockets[0].getsockname())
        client = await asyncio.open_connection(sock=sock)
        to_client = await asyncio.wait_for(lent.made, 5)
        to_pds, _ = await loop.create_connection(asyncio.Protocol, *pds_server.sockets[0].getsockname())
        pds = await asyncio.wait_for(accepted.get(), 5)
        try:
            tunnel = Tunnel(to_client, to_pds, b"", False, stall=stall, route=ROUTE)
            yield _Stand(client, pds, tunnel, lent)
        finally:
            for _, writer in (client, pds):
                writer.transport.abort()
    finally:
        gate_server.close()
        pds_server.close()


ROUTE = "/xrpc/com.atproto.sync.subscribeRepos"


def stalls(side: str) -> float:
    return REGISTRY.get_sample_value("upload_gate_websocket_stalls_total", {"side": side}) or 0.0


def stall_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gate.proxy.tunnel"]


async def test_a_client_that_stops_reading_past_the_stall_bound_drops_both(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "gate.proxy.tunnel")
    before = {side: stalls(side) for side in ("client", "pds")}
    async with _stand(stall=1.0, client_rcvbuf=64 * 1024) as stand:
        (_, pds_writer), (pds_reader, _) = stand.pds, stand.pds
        loop = asyncio.get_running_loop()
        start = loop.time()
        chunk = os.urandom(1024 * 1024)
        pushed = 0
        with contextlib.suppress(TimeoutError, ConnectionError):
            while pushed < 64 * len(chunk):  # the client reads none of it
                pds_writer.write(chunk)
                await asyncio.wait_for(pds_writer.drain(), 2)
                pushed += len(chunk)
        await asyncio.wait_for(stand.tunnel.closed, 10)
        # Dropped once the bound was over (the stall began after the start), and by the tunnel itself.
        assert 1.0 <= loop.time() - start < 10
        assert pushed < 64 * len(chunk)
        assert stand.lent.lost.is_set()  # the listener's protocol hears its connection is gone
        # The PDS's side is closed: its reads end (a reset, when the gate drops it with bytes unread).
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(pds_reader.read(), 5) == b""
        # So is the client's: past the bytes that reached it, the end.
        client_reader, _ = stand.client
        with contextlib.suppress(ConnectionError):
            while await asyncio.wait_for(client_reader.read(1024 * 1024), 5):
                pass
    # Logged and counted once, naming the route and the side, never a byte of what was relayed.
    assert stall_lines(caplog) == [
        f"websocket {ROUTE} dropped: the client read nothing of what was waiting for it for 1 s"
    ]
    assert (stalls("client"), stalls("pds")) == (before["client"] + 1, before["pds"])


async def test_a_pds_that_stops_reading_past_the_stall_bound_is_logged_and_counted_as_the_pds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "gate.proxy.tunnel")
    before = stalls("pds")
    async with _stand(stall=1.0, client_rcvbuf=64 * 1024) as stand:
        _, client_writer = stand.client
        chunk = os.urandom(1024 * 1024)
        with contextlib.suppress(TimeoutError, ConnectionError):
            for _ in range(256):  # the PDS reads none of it
                client_writer.write(chunk)
                await asyncio.wait_for(client_writer.drain(), 2)
        await asyncio.wait_for(stand.tunnel.closed, 10)
        assert stand.lent.lost.is_set()
    assert stall_lines(caplog) == [
        f"websocket {ROUTE} dropped: the pds read nothing of what was waiting for it for 1 s"
    ]
    assert stalls("pds") == before + 1


async def test_a_pause_shorter_than_the_bound_holds_the_bytes_back() -> None:
    async with _stand(stall=5.0, client_rcvbuf=64 * 1024) as stand:
        (pds_reader, pds_writer), (client_reader, client_writer) = stand.pds, stand.client
        sent = hashlib.sha256()
        pushed = 0
        with contextlib.suppress(TimeoutError):
            while pushed < 160 * 1024 * 1024:  # the client reads nothing meanwhile
                chunk = os.urandom(1024 * 1024)
                sent.update(chunk)
                pushed += len(chunk)
                pds_writer.write(chunk)
                await asyncio.wait_for(pds_writer.drain(), 0.5)
        assert pushed < 160 * 1024 * 1024  # the PDS's writes stalled: the gate's end is paused
        assert await sha256_of_next(client_reader, pushed, 5) == sent.digest()
        assert not stand.tunnel.closed.done()
        client_writer.close()  # and the end of one is the end of both
        await asyncio.wait_for(stand.tunnel.closed, 10)
        assert await asyncio.wait_for(pds_reader.read(), 5) == b""
