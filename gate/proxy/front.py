"""Plain GETs served before aiohttp's server sees them, with the bytes aiohttp's path would give.

Why: aiohttp's server (its request and response objects, the middleware, the router) costs about as
much CPU per small passthrough GET as everything else the gate does for it (docs/performance.md,
"Passthrough, sixth pass"): it was what kept the gate's added latency above nginx's.

How: each connection of the public listener (``gate.proxy.connection``) reads request heads itself
first. A head that is a plain GET (``plain_get``) goes to the PDS on the lean client
(``gate.proxy.lane_pass``) as the same bytes aiohttp's path sends, and the answer comes back as the
bytes aiohttp's server writes (``answer_head``). Anything else hands the connection over to aiohttp from
that request on, its bytes untouched: aiohttp's parser, the app's middleware and every check see exactly
what they saw before. tests/integration/proxy/test_front.py compares the bytes both ways.

Trust boundary: what is served here is a strict subset of what aiohttp's path accepts and passes
through, so no request can mean one thing here and another there. A head is plain only if it is all of:
visible ASCII with CRLF line ends (no bare LF, no control byte) and at most ``MAX_HEAD`` bytes; a complete
HTTP/1.1 GET without a body by llhttp's strict parse (aiohttp's request parser is the same llhttp,
strict); an origin-form target without fragment or backslash; no header that frames a body or changes
the connection's protocol, no repeated singleton (aiohttp refuses those), at most aiohttp's header count;
not getBlob (a blob the gate blocked is withheld by the app), not a route the app serves itself, and the
gate not draining. Uploads are POSTs: never here.
"""

from __future__ import annotations

import http
import logging
import re
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol

import httptools
from aiohttp import hdrs
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

from gate import metrics
from gate.answers import ALLOW_ORIGIN, EXPOSE_HEADERS, EXPOSED, NODE_REASONS, compact_json
from gate.errors import XrpcError
from gate.proxy.drain import Drain
from gate.proxy.forwarded import TrustedProxies, resolve
from gate.proxy.lane import PdsCut
from gate.proxy.lane_pass import SPELLING, LaneAnswer, LanePass
from gate.proxy.routing import GET_BLOB_PATH, LABEL_PATHS, normalised_path
from gate.proxy.upstream import forwarded_headers

log = logging.getLogger(__name__)

MAX_HEAD = 8190  # aiohttp's longest request line or header: a longer head is aiohttp's to refuse
MAX_HEADERS = 128  # aiohttp's most headers
_UNPLAIN = re.compile(rb"[^\t\r\n\x20-\x7e]")  # anything but visible ASCII, space, tab and line ends
# Headers that frame a body or change what the connection carries: such a request is aiohttp's.
_HANDED = frozenset((b"content-length", b"transfer-encoding", b"upgrade", b"expect"))
# aiohttp's request parser refuses a second one of these (RFC 9110 singletons).
_SINGLETONS = frozenset(
    n.encode()
    for n in (
        "content-length",
        "content-location",
        "content-range",
        "content-type",
        "etag",
        "host",
        "max-forwards",
        "server",
        "transfer-encoding",
        "user-agent",
    )
)
EMPTY_BODY = frozenset((204, 304, *range(100, 200)))  # statuses whose answers have no body


@dataclass(slots=True)
class PlainGet:
    target: str  # the origin form, as received
    headers: CIMultiDict[str]
    keep_alive: bool


class _Head:
    """httptools' callbacks for one request head."""

    __slots__ = ("complete", "headers", "keep_alive", "parser", "url", "version")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.parser = httptools.HttpRequestParser(self)
        self.version = ""
        self.keep_alive = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        # Read here: once the message is complete, the parser is ready for the next one and forgets.
        self.version = self.parser.get_http_version()
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.complete = True


def plain_get(head: bytes) -> PlainGet | None:
    """The request if ``head`` (up to and with its blank line) is a plain GET, else None (aiohttp's)."""
    if len(head) > MAX_HEAD or not head.startswith(b"GET /") or _UNPLAIN.search(head) is not None:
        return None
    if head.count(b"\n") != head.count(b"\r\n") or b"#" in head or b"\\" in head:
        return None
    parsed = _Head()
    try:
        parsed.parser.feed_data(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    if not parsed.complete or parsed.version != "1.1" or len(parsed.headers) > MAX_HEADERS:
        return None
    seen: set[bytes] = set()
    headers: CIMultiDict[str] = CIMultiDict()
    spelling = SPELLING
    for name, value in parsed.headers:
        lower = name.lower()
        if lower in _HANDED:
            return None
        if lower in _SINGLETONS:
            if lower in seen:
                return None
            seen.add(lower)
        # As aiohttp's parser gives them: its own spelling of a name it knows, no trailing whitespace.
        headers.add(spelling.get(lower) or name.decode(), value.rstrip(b" \t").decode())
    if b"host" not in seen:  # aiohttp refuses an HTTP/1.1 request without one
        return None
    return PlainGet(parsed.url.decode(), headers, parsed.keep_alive)


class Out(Protocol):
    """Where the front writes an answer: the client's connection, with its flow control."""

    def write(self, data: bytes) -> None: ...

    async def drained(self) -> None: ...

    def cut(self) -> None: ...


class Front:
    """The public app's passthrough of a plain GET, without aiohttp's server."""

    def __init__(self, lane_pass: LanePass, trusted: TrustedProxies, drain: Drain) -> None:
        self._lane_pass = lane_pass
        self._trusted = trusted
        self._drain = drain

    def plain(self, head: bytes) -> PlainGet | None:
        if self._drain.started:  # the app's middleware closes each connection after its answer
            return None
        get = plain_get(head)
        if get is None:
            return None
        path = normalised_path(get.target)
        if path == GET_BLOB_PATH or path.startswith(LABEL_PATHS):
            return None
        return get

    async def serve(self, get: PlainGet, peer: str | None, out: Out) -> bool:
        """Relay one plain GET; True when the connection may carry the next request."""
        self._drain.request_started()
        try:
            return await self._serve(get, peer, out)
        finally:
            self._drain.request_done()

    async def _serve(self, get: PlainGet, peer: str | None, out: Out) -> bool:
        metrics.PASSTHROUGH_HTTP.inc()
        headers = get.headers
        fwd = resolve(
            peer, headers.get("X-Forwarded-For"), headers.get("X-Forwarded-Proto"), "http", self._trusted
        )
        keep_alive = get.keep_alive
        try:
            answer = await self._lane_pass.answer(forwarded_headers(headers, fwd), get.target)
        except XrpcError as exc:
            keep_alive = keep_alive and not exc.closes_connection
            out.write(error_answer(exc, keep_alive))
            return keep_alive
        except Exception:
            log.exception("unhandled error on GET")
            out.write(error_answer(XrpcError(), keep_alive))
            return keep_alive
        try:
            return await _relay(answer, keep_alive, out)
        finally:
            self._lane_pass.release(answer.conn)


async def _relay(answer: LaneAnswer, keep_alive: bool, out: Out) -> bool:
    status, body = answer.status, answer.body
    if body is not None:
        out.write(answer_head(status, answer.reason, answer.headers, len(body), keep_alive)[0] + body)
        await out.drained()
        return keep_alive
    head, chunked = answer_head(status, answer.reason, answer.headers, None, keep_alive)
    out.write(head)
    try:
        async for chunk in answer.conn.body():
            out.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            await out.drained()
    except PdsCut:
        out.cut()  # headers are sent: cut the client's connection, as the PDS cut the gate's
        return False
    if chunked:
        out.write(b"0\r\n\r\n")
    await out.drained()
    return keep_alive


def answer_head(
    status: int, reason: str, headers: CIMultiDict[str], whole: int | None, keep_alive: bool
) -> tuple[bytes, bool]:
    """The status line and headers aiohttp's server writes for a relayed answer (``gate.proxy.relayed``):
    ``whole``, the length of a body given in one write, or None for one streamed; and whether the body
    goes chunked. The order of aiohttp's ``Response._start`` and ``StreamResponse._prepare_headers``."""
    chunked = False
    if status in EMPTY_BODY:
        headers.popall(hdrs.CONTENT_LENGTH, None)
        headers.popall(hdrs.TRANSFER_ENCODING, None)
    else:
        if whole is not None and hdrs.CONTENT_LENGTH not in headers:
            headers[hdrs.CONTENT_LENGTH] = str(whole)
        length = headers.get(hdrs.CONTENT_LENGTH)
        if length is None:
            chunked = True
            headers[hdrs.TRANSFER_ENCODING] = "chunked"
        if length is None or int(length):
            headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
    if hdrs.DATE not in headers:
        headers[hdrs.DATE] = http_date()
    if headers.get(hdrs.SERVER) == SERVER_SOFTWARE:  # gate.answers.on_prepare: no banner
        del headers[hdrs.SERVER]
    if hdrs.CONNECTION not in headers and not keep_alive:
        headers[hdrs.CONNECTION] = "close"
    return _serialised(f"HTTP/1.1 {status} {reason}", headers), chunked


def error_answer(exc: XrpcError, keep_alive: bool) -> bytes:
    """The gate's own XRPC error as aiohttp's path writes it (``gate.answers.xrpc_json``, CORS added)."""
    body = compact_json(exc.body()).encode()
    headers: CIMultiDict[str] = CIMultiDict(exc.headers)
    headers[hdrs.CONTENT_TYPE] = "application/json; charset=utf-8"
    headers[hdrs.CONTENT_LENGTH] = str(len(body))
    headers[hdrs.DATE] = http_date()
    if not keep_alive:
        headers[hdrs.CONNECTION] = "close"
    headers[ALLOW_ORIGIN] = "*"
    exposed = [h for h in EXPOSED if h in headers]
    if exposed:
        headers[EXPOSE_HEADERS] = ", ".join(exposed)
    reason = NODE_REASONS.get(exc.status) or http.HTTPStatus(exc.status).phrase
    return _serialised(f"HTTP/1.1 {exc.status} {reason}", headers) + body


def _serialised(status_line: str, headers: CIMultiDict[str]) -> bytes:
    lines = [status_line, *(name + ": " + value for name, value in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


_dates: dict[int, str] = {}


def http_date() -> str:
    """The Date header's value, made once a second (as aiohttp does)."""
    now = int(time.time())
    date = _dates.get(now)
    if date is None:
        _dates.clear()
        date = _dates[now] = formatdate(now, usegmt=True)
    return date
