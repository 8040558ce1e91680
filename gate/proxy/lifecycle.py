"""The outermost middleware of the public app: each request's life as the connection and the drain
need to know it.

- Its connection (``gate.proxy.connection``) stops the header clock when the handler starts, and is
  idle again when it ends.
- The drain (``gate.proxy.drain``) counts it in flight (a websocket is not waited for: the firehose
  never ends by itself), and once the gate is stopping every answer says ``Connection: close``.
- An answer given while the body is still arriving (the drain's 503) is sent at once and the rest of
  the body is read and dropped for a moment before the connection closes: closing a socket with unread
  data resets it, and a reset can destroy the answer before the client reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gate.proxy.connection import Connection
from gate.proxy.drain import Drain

LINGER = 1.0  # seconds an answered, unfinished body is still read (and dropped) during a drain

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_websocket(request: web.BaseRequest) -> bool:
    return (
        request.headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in request.headers.get("Connection", "").lower()
    )


def lifecycle_middleware(drain: Drain) -> Middleware:
    @web.middleware
    async def lifecycle(request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = Connection.of(request)
        if connection is not None:
            connection.request_started()
        try:
            if is_websocket(request):
                return await handler(request)
            drain.request_started()
            try:
                response = await handler(request)
                if drain.started:
                    response.force_close()
                    if not request.content.is_eof():
                        await _answer_then_linger(request, response)
                return response
            finally:
                drain.request_done()
        finally:
            if connection is not None:
                connection.request_finished(request.content)

    return lifecycle


async def _answer_then_linger(request: web.Request, response: web.StreamResponse) -> None:
    await response.prepare(request)
    await response.write_eof()
    with contextlib.suppress(Exception):  # best effort: the answer is already on its way
        async with asyncio.timeout(LINGER):
            while await request.content.readany():
                pass
