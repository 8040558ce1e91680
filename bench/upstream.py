"""The benchmark's upstream: a real aiohttp server standing in for the PDS, in its own process.

``python -m bench.upstream`` prints ``PORT <n>`` once listening on 127.0.0.1 (an ephemeral port), then
serves until SIGTERM:
- ``POST …/com.atproto.repo.uploadBlob``: reads the body, computes its SHA-256 (the PDS computes the CID)
  and stores it in a file under a temporary directory (removed once written, so a long run does not
  fill the disk), then answers a blob ref as the PDS does;
- ``GET /xrpc/_health``: a small JSON answer (passthrough of small GETs);
- ``GET /download?mb=N``: N MB streamed in 64 KB chunks (a big getBlob);
- ``GET /ws``: a websocket that, asked ``"<count> <bytes>"``, sends that many binary frames, then
  ``"done"`` (the firehose).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import sys
import tempfile
import uuid
from pathlib import Path

from aiohttp import WSMsgType, web

CHUNK = 64 * 1024
_ZEROS = bytes(CHUNK)


def _store(directory: Path, body: bytes) -> None:
    path = directory / uuid.uuid4().hex  # the same bytes may be uploaded by several clients at once
    with path.open("wb") as f:
        f.write(body)
    path.unlink()


def create_app(directory: Path) -> web.Application:
    async def upload(request: web.Request) -> web.Response:
        body = await request.read()
        digest = hashlib.sha256(body).digest()
        await asyncio.to_thread(_store, directory, body)
        cid = "b" + base64.b32encode(bytes([1, 0x55, 0x12, 0x20]) + digest).decode().lower().rstrip("=")
        mime = request.headers.get("Content-Type", "*/*")
        return web.json_response(
            {"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(body)}}
        )

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"version": "bench", "ok": True})

    async def download(request: web.Request) -> web.StreamResponse:
        total = int(float(request.query.get("mb", "50")) * 1_000_000)
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = total
        await resp.prepare(request)
        sent = 0
        while sent < total:
            n = min(CHUNK, total - sent)
            await resp.write(_ZEROS[:n])
            sent += n
        await resp.write_eof()
        return resp

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            count, size = (int(x) for x in msg.data.split())
            frame = os.urandom(size)
            for _ in range(count):
                await ws.send_bytes(frame)
            await ws.send_str("done")
        return ws

    app = web.Application(client_max_size=1024**3)
    app.router.add_post("/xrpc/com.atproto.repo.uploadBlob", upload)
    app.router.add_get("/xrpc/_health", health)
    app.router.add_get("/download", download)
    app.router.add_get("/ws", websocket)
    return app


async def serve() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-upstream-") as tmp:
        await serve_app(create_app(Path(tmp)))


async def serve_app(app: web.Application) -> None:
    """A benchmark server: ``app`` on a free loopback port, said as ``PORT <n>`` (bench/procs.py reads
    it), until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"PORT {runner.addresses[0][1]}", flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve())
    sys.exit(0)
