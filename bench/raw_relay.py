"""A bare relay with neither aiohttp's server nor its client: an asyncio protocol parses each request
with llhttp (through httptools), sends it on gate.proxy.lane and writes the answer back itself. What a
passthrough GET costs when no aiohttp layer is on the path at all. GETs without a body only.

``python -m bench.raw_relay UPSTREAM`` prints ``PORT <n>``, then relays until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import httptools
from yarl import URL

from gate.proxy.lane_pool import Lane


class Front(asyncio.Protocol):
    def __init__(self, lane: Lane) -> None:
        self._lane = lane
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: list[bytes] = []
        self._queue: list[bytes] = []
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append(name + b": " + value)

    def on_message_complete(self) -> None:
        head = b"GET " + self._url + b" HTTP/1.1\r\n" + b"\r\n".join(self._headers) + b"\r\n\r\n"
        self._url, self._headers = b"", []
        self._queue.append(head)
        if not self._busy:
            self._busy = True
            asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        while self._queue:
            head = self._queue.pop(0)
            conn = await self._lane.request(head)
            try:
                out = [b"HTTP/1.1 %d %s\r\n" % (conn.status, conn.reason)]
                out += [name + b": " + value + b"\r\n" for name, value in conn.headers]
                out.append(b"\r\n")
                while not conn.done:
                    await conn.more()
                out.append(conn.take())
                if self._transport is not None:
                    self._transport.write(b"".join(out))
            finally:
                self._lane.release(conn)
        self._busy = False


async def serve(upstream: str) -> None:
    base = URL(upstream)
    assert base.host is not None and base.port is not None
    lane = Lane(base.host, base.port, 10.0)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(lambda: Front(lane), "127.0.0.1", 0)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()
    lane.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
    sys.exit(0)
