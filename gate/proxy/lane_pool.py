"""The lane's pool (``gate.proxy.lane``): keep-alive connections to one PDS address, as aiohttp's
connector keeps them — the most recently used first, an idle one closed after ``KEEPALIVE`` seconds, at
close(), or when the PDS closes it — and the one retry aiohttp's client makes: a GET whose connection
is lost before the answer's head arrived is sent once more on another connection (an idempotent
request, RFC 9112 §9.3.1.1); a failed connect, a malformed answer or a deadline is never retried.
"""

from __future__ import annotations

import asyncio

from gate.proxy.lane import Connection, PdsClosed

KEEPALIVE = 15.0  # seconds, aiohttp's connector's keepalive_timeout


class Lane:
    """A pool of keep-alive connections to one PDS address (plain TCP)."""

    def __init__(self, host: str, port: int, connect_timeout: float, keepalive: float = KEEPALIVE) -> None:
        self._host = host
        self._port = port
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._idle: list[Connection] = []
        self._sweep: asyncio.TimerHandle | None = None

    async def request(self, head: bytes) -> Connection:
        """Send a bodiless request and wait for its answer's head; the connection goes back with
        ``release`` once the answer is read (or abandoned). OSError or TimeoutError (connect), PdsClosed
        (twice), PdsMalformed."""
        retried = False
        while True:
            conn = self._pooled() or await self._connect()
            conn.begin()
            assert conn.transport is not None
            conn.transport.write(head)
            try:
                await conn.head()
            except PdsClosed:
                conn.close()
                if retried:
                    raise
                retried = True
                continue
            except BaseException:
                conn.close()
                raise
            return conn

    def release(self, conn: Connection) -> None:
        if not conn.reusable():
            conn.close()
            return
        loop = conn.loop
        conn.idle_since = loop.time()
        self._idle.append(conn)
        if self._sweep is None:
            self._sweep = loop.call_later(self._keepalive, self._expire)

    def forget(self, conn: Connection) -> None:
        """A connection that ended (the PDS closed it, or the gate did)."""
        if conn in self._idle:
            self._idle.remove(conn)

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _pooled(self) -> Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            _, conn = await loop.create_connection(lambda: Connection(self.forget), self._host, self._port)
        return conn

    def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        stale = [conn for conn in self._idle if now - conn.idle_since >= self._keepalive]
        for conn in stale:
            conn.close()  # connection_lost forgets it
        self._idle = [conn for conn in self._idle if conn not in stale]
        self._sweep = None
        if self._idle:
            oldest = min(conn.idle_since for conn in self._idle)
            self._sweep = loop.call_later(max(0.0, oldest + self._keepalive - now), self._expire)
