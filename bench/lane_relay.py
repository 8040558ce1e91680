"""A bare relay like bench/relay.py whose client side is gate.proxy.lane (a keep-alive pool of asyncio
connections, the answer parsed by llhttp through httptools) instead of aiohttp's ClientSession: what the
gate's passthrough GETs cost on that lane, with none of the gate's work. GETs only.

``python -m bench.lane_relay UPSTREAM`` prints ``PORT <n>``, then relays until SIGTERM.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from yarl import URL

from bench.relay import bare_app, main
from gate.proxy.lane_pool import Lane

LANE = web.AppKey("lane", Lane)


def create_app(upstream: str) -> web.Application:
    base = URL(upstream)
    host, port = base.host, base.port
    assert host is not None and port is not None

    async def client(app: web.Application) -> AsyncIterator[None]:
        app[LANE] = Lane(host, port, 10.0)
        yield
        app[LANE].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        lines = [f"GET {request.raw_path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        lines.append("\r\n")
        lane = request.app[LANE]
        conn = await lane.request("\r\n".join(lines).encode())
        try:
            headers = [(n.decode(), v.decode()) for n, v in conn.headers]
            if conn.done:
                body = conn.take()
                return web.Response(
                    status=conn.status, reason=conn.reason.decode(), body=body, headers=headers
                )
            out = web.StreamResponse(status=conn.status, headers=headers)
            await out.prepare(request)
            while chunk := await conn.read():
                await out.write(chunk)
            await out.write_eof()
            return out
        finally:
            lane.release(conn)

    return bare_app("GET", relay, client)


if __name__ == "__main__":
    main(create_app)
