"""Each request's life as the connection and the drain need to know it, told by the public app's one
middleware (``gate.app``, which also checks the target and maps errors: one layer of the gate's on every
request).

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

from aiohttp import web

LINGER = 1.0  # seconds an answered, unfinished body is still read (and dropped) during a drain


def is_websocket(request: web.BaseRequest) -> bool:
    return (
        request.headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in request.headers.get("Connection", "").lower()
    )


async def answer_then_linger(request: web.Request, response: web.StreamResponse) -> None:
    await response.prepare(request)
    await response.write_eof()
    with contextlib.suppress(Exception):  # best effort: the answer is already on its way
        async with asyncio.timeout(LINGER):
            while await request.content.readany():
                pass
