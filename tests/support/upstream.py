"""A stand-in PDS for integration tests: a real aiohttp server on a real port that records every
request it receives (method, raw path, headers, body bytes) and answers like the PDS does."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDictProxy

from gate.proxy.routing import UPLOAD_PATH, normalised_path
from tests.support.cids import cid_of


def on_upload_route(raw_path: str) -> bool:
    """Any method on the upload route, in any spelling the gate routes there."""
    return normalised_path(raw_path) == UPLOAD_PATH


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    peer: str | None


# What the PDS answers an upload whose token it cannot verify (auth-verifier.ts), before reading a byte.
INVALID_TOKEN = {"error": "InvalidToken", "message": "Token could not be verified"}
# What it answers getBlob for a blob it does not have (sync/getBlob.ts).
BLOB_NOT_FOUND = {"error": "InvalidRequest", "message": "Blob not found"}


@dataclass
class RecordingUpstream:
    seen: list[Seen] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering (to test timeouts)
    status: int = 200
    extra_headers: dict[str, str] = field(default_factory=dict)
    # Authorization values it accepts on uploads (None: any), as the PDS checks credentials: the others
    # get the PDS's 400 InvalidToken, whatever the body.
    accepted_auth: set[str] | None = None
    # Blobs getBlob serves, by (did, cid), any other being the PDS's "Blob not found"; None: getBlob is
    # answered like any other path.
    blobs: dict[tuple[str, str], bytes] | None = None
    ws_sent: int = 0
    ws_closed: list[int | None] = field(default_factory=list)

    def uploads(self) -> list[Seen]:
        """Upload requests that carried bytes (what could have been stored)."""
        return [s for s in self.seen if on_upload_route(s.raw_path) and s.body]

    def probes(self) -> list[Seen]:
        """Empty-body upload requests: the gate asking whether the PDS accepts a caller."""
        return [s for s in self.seen if on_upload_route(s.raw_path) and not s.body]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/stream":
            return await self.stream(request)
        if request.path == "/ws":
            return await self.websocket(request)
        body = await request.read()
        self.seen.append(Seen(request.method, request.raw_path, request.headers, body, request.remote))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.blobs is not None and request.path == "/xrpc/com.atproto.sync.getBlob":
            blob = self.blobs.get((request.query.get("did", ""), request.query.get("cid", "")))
            if blob is None:
                return web.json_response(BLOB_NOT_FOUND, status=400)
            return web.Response(body=blob, content_type="application/octet-stream")
        if on_upload_route(request.raw_path):
            auth = request.headers.get("Authorization")
            if self.accepted_auth is not None and auth not in self.accepted_auth:
                return web.json_response(INVALID_TOKEN, status=400, headers={"Cache-Control": "private"})
            uploaded = {
                "blob": {
                    "$type": "blob",
                    "ref": {"$link": cid_of(body)},
                    "mimeType": request.headers.get("Content-Type", "*/*"),
                    "size": len(body),
                }
            }
            return web.json_response(uploaded, status=self.status, headers=self.extra_headers)
        return web.json_response(
            {"path": request.raw_path, "len": len(body), "sha256": hashlib.sha256(body).hexdigest()},
            status=self.status,
            headers=self.extra_headers,
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """A chunked response written piece by piece (server-sent-events style)."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(5):
            await resp.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """Greets with one binary frame, echoes every frame with ``echo:`` before it; ``close:N`` closes
        with code N, ``send:N:SIZE`` sends N frames of SIZE bytes (frame i filled with byte i % 256, as
        fast as the connection takes them; ``ws_sent`` counts the bytes). How each websocket ended (its
        close code, None when the connection just dropped) goes to ``ws_closed``."""
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        await ws.send_bytes(b"\x00frame-from-upstream")
        async for msg in ws:
            if msg.type == web.WSMsgType.TEXT and msg.data.startswith("close:"):
                await ws.close(code=int(msg.data.split(":")[1]), message=b"bye")
            elif msg.type == web.WSMsgType.TEXT and msg.data.startswith("send:"):
                count, size = (int(x) for x in msg.data.split(":")[1:])
                for i in range(count):
                    await ws.send_bytes(bytes([i % 256]) * size)
                    self.ws_sent += size
            elif msg.type == web.WSMsgType.TEXT:
                await ws.send_str("echo:" + msg.data)
            elif msg.type == web.WSMsgType.BINARY:
                await ws.send_bytes(b"echo:" + msg.data)
        self.ws_closed.append(ws.close_code)
        return ws

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app
