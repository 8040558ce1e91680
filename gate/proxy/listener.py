"""The public listener: aiohttp's request handlers, each inside a ``Connection`` (the header
deadline), and the drain when the gate stops (``gate.proxy.drain``).

The listening socket is the gate's own ``loop.create_server`` whose protocol factory wraps aiohttp's
(``runner.server``, a ``web.Server``, is that factory); the runner still owns every request handler,
so its cleanup closes what is left once the gate has drained. Nothing private of aiohttp is touched.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from gate.proxy.connection import Connection
from gate.proxy.drain import Drain
from gate.proxy.front import Front

log = logging.getLogger(__name__)

# After the drain, what is still open (websockets, stalled downloads) gets this long from aiohttp.
CLOSE_GRACE = 2.0


class PublicListener:
    def __init__(
        self,
        app: web.Application,
        drain: Drain,
        header_timeout: float,
        stop_bound: float,
        front: Front | None,
    ) -> None:
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_GRACE)
        self._front = front
        self._drain = drain
        self._header_timeout = header_timeout
        self._stop_bound = stop_bound
        self._server: asyncio.Server | None = None
        self._live: set[Connection] = set()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        await self._runner.setup()
        handlers = self._runner.server
        assert handlers is not None
        timeout, live = self._header_timeout, self._live
        front = self._front
        self._server = await asyncio.get_running_loop().create_server(
            lambda: Connection(handlers, timeout, live, front),
            host,
            port,
            backlog=128,
            reuse_port=reuse_port or None,
        )
        addr = self._server.sockets[0].getsockname()
        return str(addr[0]), int(addr[1])

    async def close(self) -> None:
        """Stop accepting, drain, then let aiohttp close the rest."""
        if self._server is not None:
            self._server.close()
        self._drain.begin()
        for connection in list(self._live):
            connection.close_if_waiting()
        try:
            async with asyncio.timeout(self._stop_bound):
                await self._drain.settled()
        except TimeoutError:
            log.warning(
                "requests still in flight %.0f s after the drain began: closing them", self._stop_bound
            )
        await self._runner.cleanup()
        for connection in list(self._live):  # the front's own (aiohttp's cleanup closed its handlers')
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
