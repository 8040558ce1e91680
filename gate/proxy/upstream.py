"""The PDS side of the proxy: one aiohttp client session, streaming passthrough, uploads; websockets
(a connection of their own, then a byte tunnel).

Forward byte for byte: method, *raw* path and query (DPoP proofs bind the path exactly as received),
``Authorization``, ``DPoP``, ``Host``. Responses come back unchanged — a 401 with ``WWW-Authenticate`` and
``DPoP-Nonce`` must reach the client as the PDS sent it. Nothing the gate sends is retried by the gate (a
DPoP proof is single-use), with one exception that is aiohttp's client's own: a GET (or other idempotent
request) whose connection closed before any answer is sent once more on another connection (RFC 9112
§9.3.1.1); uploads never are. GETs without a body to a plain-HTTP PDS take the lean client
(``gate.proxy.lane_pass``), which behaves the same, retry included.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gate import metrics
from gate.answers import RELAYED
from gate.errors import InvalidRequest, UpstreamFailure, UpstreamTimeout
from gate.proxy import handshake
from gate.proxy.deadlines import Deadlines
from gate.proxy.forwarded import Forwarded
from gate.proxy.headers import FORWARDING, end_to_end, relayable
from gate.proxy.lane_pass import LanePass
from gate.proxy.lane_pool import Lane
from gate.proxy.relayed import relayed, streamed, timed_out, unreachable
from gate.proxy.tunnel import Tunnel

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
# A websocket handshake has no body (refused if it declares one). Its Sec-WebSocket-* headers go to the
# PDS as the client sent them: the client and the PDS handshake with each other, the gate reads no frame.
WS_DROP = frozenset(("content-length",)) | PASS_DROP
# The 101's own framing is aiohttp's to write (a refusal's body length too).
WS_ANSWER_DROP = frozenset(("content-length",))


# What aiohttp's client adds to a request that lacks it (Content-Type: to a request with a body).
AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent")


def auto_skipped(headers: CIMultiDict[str], has_body: bool) -> list[str] | None:
    """The automatic headers this request lacks, for aiohttp not to add: the PDS gets what the client
    sent. None when it lacks none (every browser and SDK sends them), which spares aiohttp its copy."""
    skip = [name for name in AUTO_HEADERS if name not in headers]
    if has_body and "Content-Type" not in headers:
        skip.append("Content-Type")
    return skip or None


class Upstream:
    def __init__(self, base: URL, connect_timeout: float, timeout: float, *, lane: bool = True) -> None:
        self.base = base
        self._prefix = str(base).rstrip("/")
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None  # for a websocket to an https PDS, made at the first
        assert base.host_port_subcomponent is not None, "GATE_UPSTREAM is an absolute URL"
        self._host = base.host_port_subcomponent
        self._path_prefix = base.raw_path.rstrip("/")  # what url() puts before a target
        self._deadlines = Deadlines(timeout)  # the waits for the PDS's answers (not the websocket's)
        # GETs without a body take the lean client (gate.proxy.lane_pass) to a plain-HTTP PDS; an https
        # PDS stays on aiohttp's client (its TLS, certificate checks and DNS cache), as does every other
        # request. ``lane=False``: aiohttp's client for everything (the tests compare the two).
        self._lane: Lane | None = None
        self._lane_pass: LanePass | None = None
        if lane and base.scheme == "http" and base.host is not None and base.port is not None:
            self._lane = Lane(base.host, base.port, connect_timeout)
            self._lane_pass = LanePass(self._lane, self._deadlines, self._host, self._path_prefix, SMALL_BODY)

    async def start(self) -> None:
        # Every request names the automatic headers it lacks (``auto_skipped``); a session-wide list
        # would cost aiohttp a copy of the headers on every request, even one that lacks none.
        self._session = aiohttp.ClientSession(
            # The PDS's bytes go back as they came: never decompress, never add our own headers.
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        self._deadlines.close()
        if self._lane is not None:
            self._lane.close()
        if self._session is not None:
            await self._session.close()

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

    @property
    def lane_pass(self) -> LanePass | None:
        """The lean client for GETs without a body (None: aiohttp's client carries every request)."""
        return self._lane_pass

    async def _open(
        self, method: str, url: URL, headers: CIMultiDict[str], data: object
    ) -> aiohttp.ClientResponse:
        """Send a request and wait for the response headers, mapping failures to 502/504."""
        assert self._session is not None, "Upstream.start() not called"
        skip = auto_skipped(headers, data is not None)
        try:
            async with self._deadlines.within():
                return await self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                    compress=None,
                    skip_auto_headers=skip,
                )
        except TimeoutError:
            raise timed_out() from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            log.warning("upstream %s %s failed: %s", method, url.path, type(exc).__name__)
            raise unreachable() from None
        except aiohttp.ClientResponseError:
            # An answer aiohttp's parser refused (not HTTP, a bad status line or header): was a 500.
            log.warning("upstream %s %s failed: a malformed answer", method, url.path)
            raise unreachable() from None

    @staticmethod
    def _response_headers(resp: aiohttp.ClientResponse) -> CIMultiDict[str]:
        relayable(resp.headers, resp.url.path)
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
        if self._lane_pass is not None and request.method == "GET" and not request.body_exists:
            return await self._lane_pass.passthrough(request, headers, target)
        data = _body_stream(request) if request.body_exists else None
        resp = await self._open(request.method, self.url(target), headers, data)
        async with resp:
            length = resp.content_length
            if length is not None and length <= SMALL_BODY:
                if data is None and resp.content.is_eof():
                    # The whole answer came with its headers (a small one almost always does) and no
                    # request body is still being sent: nothing is left to wait for, so no second
                    # deadline.
                    return self._relayed(resp, await resp.read())
                return await self._whole(resp)
            return await streamed(
                request,
                resp.status,
                resp.reason,
                self._response_headers(resp),
                resp.content.iter_any(),
                (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError),
            )

    async def _whole(self, resp: aiohttp.ClientResponse) -> web.Response:
        """The PDS's response read whole (an upload's answer, or a small passthrough answer) and given
        back unchanged in one write."""
        try:
            async with self._deadlines.within():
                payload = await resp.read()
        except TimeoutError:
            raise timed_out() from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            raise unreachable() from None  # nothing is sent yet
        return self._relayed(resp, payload)

    @classmethod
    def _relayed(cls, resp: aiohttp.ClientResponse, payload: bytes) -> web.Response:
        return relayed(resp.status, resp.reason, cls._response_headers(resp), payload)

    async def websocket(self, request: web.Request, fwd: Forwarded, target: str) -> web.StreamResponse:
        """Open the PDS's websocket with the client's own handshake (``gate.proxy.handshake``), give the
        client the PDS's answer, and after a 101 copy bytes both ways (``gate.proxy.tunnel``)."""
        metrics.PASSTHROUGH.labels("websocket").inc()
        if request.method != "GET" or request.body_exists:
            raise InvalidRequest("A websocket handshake is a GET without a body")
        headers = self._headers(request, fwd, WS_DROP)
        headers.setdefault("Host", self._host)  # HTTP/1.0 has none; aiohttp's client adds the same
        shake = handshake.Handshake(request.method, self._path_prefix + target, headers)
        try:
            pds, answer = await handshake.connect(
                self.base, self._ssl_context(), shake, self._connect_timeout, self.timeout
            )
        except UpstreamTimeout:
            raise timed_out() from None
        except handshake.HandshakeFailure as exc:
            log.warning("upstream websocket %s failed: %s", self.url(target).path, exc.cause)
            raise unreachable() from None
        try:
            relayable(answer.headers, self.url(target).path)
        except UpstreamFailure:
            pds.abort()
            raise
        answered = end_to_end(answer.headers, WS_ANSWER_DROP)
        if answer.status != 101:
            refused = web.Response(status=answer.status, reason=answer.reason, body=answer.rest)
            refused[RELAYED] = True
            refused.headers.extend(answered)
            return refused
        # Hop-by-hop, so set again: the client is switched to what the PDS switched to.
        answered["Connection"] = "Upgrade"
        answered["Upgrade"] = answer.headers.get("Upgrade", "websocket")
        switched = web.StreamResponse(
            status=101, reason=answer.reason or "Switching Protocols", headers=answered
        )
        switched[RELAYED] = True
        switched.force_close()  # nothing follows on this connection once the tunnel ends
        try:
            await switched.prepare(request)
            await switched.write_eof()
        except BaseException:
            pds.abort()
            raise
        client = request.transport
        if client is None or client.is_closing():  # the client left during the handshake
            pds.abort()
            return switched
        tunnel = Tunnel(client, pds, answer.rest, answer.ended, route=self.url(target).path)
        try:
            await asyncio.shield(tunnel.closed)
        finally:
            if not tunnel.closed.done():  # cancelled (the gate is stopping)
                tunnel.abort()
        return switched

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.base.scheme not in ("https", "wss"):
            return None
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl


async def _slices(body: bytes) -> AsyncIterator[memoryview]:
    # Views, not copies; aiohttp drains the socket between writes, so at most one slice is buffered.
    view = memoryview(body)
    for start in range(0, len(view), UPLOAD_SLICE):
        yield view[start : start + UPLOAD_SLICE]


async def _body_stream(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(STREAM_CHUNK):
        yield chunk
