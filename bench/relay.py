"""The floor under any aiohttp proxy, for the passthrough benchmark: aiohttp's own server and client
rounds on one event loop, with none of the gate's work.

``python -m bench.relay UPSTREAM`` prints ``PORT <n>`` once listening on 127.0.0.1, then relays every
request to ``UPSTREAM`` through one ``aiohttp.ClientSession`` and streams the answer back, until SIGTERM:
no header filtering, no target checks, no timeouts, no metrics, no middleware. It is not safe in front
of anything; it is what the gate is read against. (Its upstream, bench/upstream.py, is itself the other
ceiling: a bare aiohttp app answering a fixed small JSON, which is the server half of any aiohttp proxy.)
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from bench.upstream import serve_app

SESSION = web.AppKey("session", aiohttp.ClientSession)


def create_app(upstream: str) -> web.Application:
    async def client(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(auto_decompress=False)
        yield
        await app[SESSION].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        async with request.app[SESSION].request(
            request.method, upstream + request.raw_path, headers=request.headers, allow_redirects=False
        ) as resp:
            out = web.StreamResponse(status=resp.status, headers=resp.headers)
            await out.prepare(request)
            async for chunk in resp.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    return bare_app("*", relay, client)


def bare_app(
    method: str,
    relay: Callable[[web.Request], Awaitable[web.StreamResponse]],
    client: Callable[[web.Application], AsyncIterator[None]],
) -> web.Application:
    """A relay's app: every path to ``relay``, its client opened and closed by ``client``."""
    app = web.Application(handler_args={"auto_decompress": False})
    app.cleanup_ctx.append(client)
    app.router.add_route(method, "/{tail:.*}", relay)
    return app


def main(create: Callable[[str], web.Application]) -> None:
    """``python -m bench.<relay> UPSTREAM``: serve until SIGTERM (bench.upstream.serve_app)."""
    asyncio.run(serve_app(create(sys.argv[1])))
    sys.exit(0)


if __name__ == "__main__":
    main(create_app)
