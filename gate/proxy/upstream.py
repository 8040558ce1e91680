"""The PDS side of the proxy: one aiohttp client session, streaming passthrough, websockets, uploads.

Forward byte for byte: method, *raw* path and query (DPoP proofs bind the path exactly as received),
``Authorization``, ``DPoP``, ``Host``. Responses come back unchanged — a 401 with ``WWW-Authenticate`` and
``DPoP-Nonce`` must reach the client as the PDS sent it. Nothing is ever retried: a DPoP proof is
single-use, and a request the PDS has seen must not be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from yarl import URL

from gate import metrics
from gate.answers import RELAYED
from gate.errors import UpstreamFailure, UpstreamTimeout
from gate.proxy.forwarded import Forwarded
from gate.proxy.headers import FORWARDING, end_to_end

log = logging.getLogger(__name__)

STREAM_CHUNK = 64 * 1024
# A passthrough answer that declares at most this many bytes is read whole and sent with its headers in
# one write (one send() instead of two: on loopback a send costs as much as the rest of the request);
# anything longer, or of unknown length, is streamed as it arrives.
SMALL_BODY = STREAM_CHUNK
# An upload body goes to the PDS in slices of this size: handed to the socket whole, whatever the
# kernel does not take at once is *copied* into asyncio's write buffer (a bytearray on Python 3.11),
# which for a 100 MB upload to a busy PDS is a second copy of the body.
UPLOAD_SLICE = 256 * 1024
# The upload body is re-framed by the gate (decoded, identity, fresh length) and ``Expect`` was
# already answered to the client by aiohttp.
UPLOAD_DROP = frozenset(("content-length", "content-encoding", "expect")) | FORWARDING
PASS_DROP = frozenset(("expect",)) | FORWARDING
WS_DROP = (
    frozenset(
        ("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol")
    )
    | PASS_DROP
)


class Upstream:
    def __init__(self, base: URL, connect_timeout: float, timeout: float) -> None:
        self.base = base
        self._prefix = str(base).rstrip("/")
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            # The PDS's bytes go back as they came: never decompress, never add our own headers.
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Upstream.start() not called"
        return self._session

    def url(self, target: str) -> URL:
        """The PDS URL for a request target's origin form (``gate.proxy.target.origin_form``, checked
        and computed once per request), as received: never re-encoded."""
        return URL(self._prefix + target, encoded=True)

    @staticmethod
    def _headers(request: web.BaseRequest, fwd: Forwarded, drop: frozenset[str]) -> CIMultiDict[str]:
        headers = end_to_end(request.headers, drop)
        headers["X-Forwarded-For"] = fwd.x_forwarded_for
        headers["X-Forwarded-Proto"] = fwd.x_forwarded_proto
        return headers

    async def _open(
        self, method: str, url: URL, headers: CIMultiDict[str], data: object
    ) -> aiohttp.ClientResponse:
        """Send a request and wait for the response headers, mapping failures to 502/504."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self.session.request(
                    method, url, headers=headers, data=data, allow_redirects=False, compress=None
                )
        except TimeoutError:
            metrics.UPSTREAM_ERRORS.labels("timeout").inc()
            raise UpstreamTimeout() from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            metrics.UPSTREAM_ERRORS.labels("unreachable").inc()
            log.warning("upstream %s %s failed: %s", method, url.path, type(exc).__name__)
            raise UpstreamFailure() from None

    @staticmethod
    def _response_headers(resp: aiohttp.ClientResponse) -> CIMultiDict[str]:
        return end_to_end(resp.headers)

    async def forward_upload(
        self, request: web.BaseRequest, body: bytes, fwd: Forwarded, target: str
    ) -> tuple[web.Response, int]:
        """Send the decoded body (identity encoding, exact length); return the PDS response unchanged."""
        headers = self._headers(request, fwd, UPLOAD_DROP)
        headers["Content-Length"] = str(len(body))  # sent as is: the slices are not chunk-encoded
        data: object = body if len(body) <= UPLOAD_SLICE else _slices(body)
        resp = await self._open(request.method, self.url(target), headers, data)
        async with resp:
            return await self._whole(resp), resp.status

    async def probe(self, request: web.BaseRequest, fwd: Forwarded, target: str) -> tuple[web.Response, int]:
        """Ask the PDS whether it accepts this upload's caller: the same request with an empty body.

        The PDS checks credentials (every kind it knows, today's and future ones) before it reads a
        body, so its answer to the empty upload is its answer to the caller; the judged bytes never
        reach it, and a DPoP proof is still spent exactly once. An accepted probe leaves a 0-byte
        temporary blob on the PDS (never referenced, like any unused upload).
        """
        return await self.forward_upload(request, b"", fwd, target)

    async def passthrough(self, request: web.Request, fwd: Forwarded, target: str) -> web.StreamResponse:
        """Stream any non-upload request both ways without buffering it (``target``: its origin form)."""
        metrics.PASSTHROUGH_HTTP.inc()
        headers = self._headers(request, fwd, PASS_DROP)
        data = _body_stream(request) if request.body_exists else None
        resp = await self._open(request.method, self.url(target), headers, data)
        async with resp:
            length = resp.content_length
            if length is not None and length <= SMALL_BODY:
                return await self._whole(resp)
            out = web.StreamResponse(status=resp.status, reason=resp.reason)
            out[RELAYED] = True
            out.headers.extend(self._response_headers(resp))
            await out.prepare(request)
            try:
                async for chunk in resp.content.iter_any():
                    await out.write(chunk)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
                # Headers are already sent: the best we can do is cut the connection, like the PDS did.
                if request.transport is not None:
                    request.transport.close()
                return out
            await out.write_eof()
            return out

    async def _whole(self, resp: aiohttp.ClientResponse) -> web.Response:
        """The PDS's response read whole (an upload's answer, or a small passthrough answer) and given
        back unchanged in one write."""
        try:
            async with asyncio.timeout(self.timeout):
                payload = await resp.read()
        except TimeoutError:
            metrics.UPSTREAM_ERRORS.labels("timeout").inc()
            raise UpstreamTimeout() from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            # Nothing is sent yet: the client gets a clear 502 rather than a cut connection.
            metrics.UPSTREAM_ERRORS.labels("unreachable").inc()
            raise UpstreamFailure() from None
        out = web.Response(status=resp.status, reason=resp.reason, body=payload)
        out[RELAYED] = True
        out.headers.clear()
        out.headers.extend(self._response_headers(resp))
        return out

    async def websocket(self, request: web.Request, fwd: Forwarded, target: str) -> web.StreamResponse:
        """Bridge a websocket (the firehose) to the PDS, frame for frame."""
        metrics.PASSTHROUGH.labels("websocket").inc()
        protocols = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
        ]
        headers = self._headers(request, fwd, WS_DROP)
        try:
            async with asyncio.timeout(self.timeout):
                upstream_ws = await self.session.ws_connect(
                    self.url(target),
                    headers=headers,
                    protocols=protocols,
                    autoping=True,
                    max_msg_size=0,
                    compress=0,
                )
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(status=exc.status, text=exc.message or "")
        except TimeoutError:
            raise UpstreamTimeout() from None
        except (aiohttp.ClientConnectionError, OSError):
            raise UpstreamFailure() from None
        client_ws = web.WebSocketResponse(
            protocols=[upstream_ws.protocol] if upstream_ws.protocol else (), max_msg_size=0, compress=False
        )
        await client_ws.prepare(request)

        async def pump(
            src: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
            dst: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
        ) -> None:
            async for msg in src:
                if msg.type is WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                elif msg.type is WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                else:
                    break
            await dst.close()

        tasks = [
            asyncio.ensure_future(pump(upstream_ws, client_ws)),
            asyncio.ensure_future(pump(client_ws, upstream_ws)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await upstream_ws.close()
            await client_ws.close()
        return client_ws


async def _slices(body: bytes) -> AsyncIterator[memoryview]:
    # Views, not copies; aiohttp drains the socket between writes, so at most one slice is buffered.
    view = memoryview(body)
    for start in range(0, len(view), UPLOAD_SLICE):
        yield view[start : start + UPLOAD_SLICE]


async def _body_stream(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(STREAM_CHUNK):
        yield chunk
