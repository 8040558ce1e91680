"""Plain GETs served before aiohttp's server sees them, with the bytes aiohttp's path would give.

Why: aiohttp's server (its request and response objects, the middleware, the router) cost ~20 µs of CPU
per small passthrough GET, a third of the gate's whole share, and it was what kept the gate's added
latency above issue 18's target (docs/performance.md, "Passthrough, fifth pass").

How: each connection of the public listener (``gate.proxy.connection``) reads request heads itself
first. A head that is a plain GET (``plain_get``) goes to the PDS on the lean client
(``gate.proxy.lane_pass``) as the bytes aiohttp's path sends (``pds_request``), and the answer comes back
as the bytes aiohttp's server writes (``_Answer``). Anything else hands the connection over to aiohttp
from that request on, its bytes untouched: aiohttp's parser, the app's middleware and every check see
exactly what they saw before. tests/integration/proxy/test_lane.py and test_lane_failures.py compare
the bytes both ways; test_front.py what follows on the connection.

Trust boundary: what is served here is a strict subset of what aiohttp's path accepts and passes
through, so no request can mean one thing here and another there. A head is plain only if it is all of:
visible ASCII with CRLF line ends (no bare LF, no control byte) and at most ``MAX_HEAD`` bytes; a complete
HTTP/1.1 GET without a body by llhttp's strict parse (aiohttp's request parser is the same llhttp,
strict); an origin-form target without fragment or backslash; no header that frames a body or changes
the connection's protocol, a Host and no repeated singleton (aiohttp refuses either), at most aiohttp's header count;
not getBlob (a blob the gate blocked is withheld by the app), not a route the app serves itself, and the
gate not draining. Uploads are POSTs: never here.
"""

from __future__ import annotations

import functools
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
from gate.proxy.forwarded import Forwarded, TrustedProxies, resolve
from gate.proxy.headers import HOP_BY_HOP, not_relayable
from gate.proxy.lane import Connection, PdsCut
from gate.proxy.lane_pass import SPELLING, LanePass
from gate.proxy.relayed import unreachable
from gate.proxy.routing import GET_BLOB_PATH, LABEL_PATHS, normalised_path
from gate.proxy.upstream import PASS_DROP

log = logging.getLogger(__name__)

MAX_HEAD = 8190  # aiohttp's longest request line or header: a longer head is aiohttp's to refuse
MAX_HEADERS = 128  # aiohttp's most headers
_UNPLAIN = re.compile(rb"[^\t\r\n\x20-\x7e]")  # anything but visible ASCII, space, tab and line ends
# Headers that frame a body or change what the connection carries (and the old websocket draft's key,
# which aiohttp refuses): such a request is aiohttp's.
_HANDED = frozenset((b"content-length", b"transfer-encoding", b"upgrade", b"expect", b"sec-websocket-key1"))
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
# The same tables as aiohttp's path, as bytes: names not passed on (gate.proxy.headers), aiohttp's spelling.
_HOP = frozenset(name.encode() for name in HOP_BY_HOP)
_PASS_DROPPED = frozenset(name.encode() for name in HOP_BY_HOP | PASS_DROP)
_SPELLED = {lower: name.encode() for lower, name in SPELLING.items()}
_BANNER = SERVER_SOFTWARE.encode()
_GET_BLOB_WORD = GET_BLOB_PATH.rsplit("/", 1)[1]  # "com.atproto.sync.getblob"
_LABEL_WORDS = LABEL_PATHS.rsplit("/", 1)[
    1
]  # "com.atproto.label."  # aiohttp's Server header, which gate.answers.on_prepare removes


@dataclass(slots=True)
class PlainGet:
    target: bytes  # the origin form, as received
    path: str  # the target's path, for the routing check and the log
    headers: list[tuple[bytes, bytes, bytes]]  # (lower-case name, aiohttp's spelling, value)
    dropped: frozenset[bytes]  # lower-case names not passed on: hop-by-hop, named by Connection, ours
    forwarded_for: str | None  # the client's X-Forwarded-For and -Proto, for gate.proxy.forwarded
    forwarded_proto: str | None
    keep_alive: bool


class _Complete:
    """httptools' one callback here: llhttp checks the head; the gate splits what it accepted (fewer calls
    back into Python than a callback per header)."""

    __slots__ = ("complete",)

    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


def plain_get(head: bytes) -> PlainGet | None:
    """The request if ``head`` (up to and with its blank line) is a plain GET, else None (aiohttp's)."""
    if len(head) > MAX_HEAD or not head.startswith(b"GET /") or _UNPLAIN.search(head) is not None:
        return None
    if head.count(b"\n") != head.count(b"\r\n") or b"#" in head or b"\\" in head:
        return None
    lines = head.split(b"\r\n")
    request_line = lines[0]
    fields = lines[1:-2]  # the head ends with an empty line
    if not request_line.endswith(b" HTTP/1.1") or len(fields) > MAX_HEADERS:
        return None
    done = _Complete()
    try:
        httptools.HttpRequestParser(done).feed_data(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    if not done.complete:  # a body follows
        return None
    # llhttp (strict) accepted it: one space each side of the target, every header "name:value" with a
    # token for a name and no line folding; it drops the value's leading whitespace, aiohttp the trailing.
    seen: set[bytes] = set()
    headers = []
    dropped = _PASS_DROPPED
    forwarded_for = forwarded_proto = None
    spelled = _SPELLED
    for line in fields:
        name, _, raw = line.partition(b":")
        lower = name.lower()
        if lower in _HANDED:
            return None
        if lower in _SINGLETONS:
            if lower in seen:
                return None
            seen.add(lower)
        value = raw.strip(b" \t")
        headers.append((lower, spelled.get(lower) or name, value))  # aiohttp's spelling of a known name
        if lower == b"connection":
            dropped = dropped | _named(value)
        elif lower == b"x-forwarded-for" and forwarded_for is None:  # aiohttp's headers.get(): the first
            forwarded_for = value.decode()
        elif lower == b"x-forwarded-proto" and forwarded_proto is None:
            forwarded_proto = value.decode()
    if b"host" not in seen:  # aiohttp refuses an HTTP/1.1 request without one
        return None
    target = request_line[4:-9]
    path = target.split(b"?", 1)[0].decode()
    # llhttp's keep-alive for HTTP/1.1: unless a Connection header names "close".
    keep_alive = b"close" not in dropped
    return PlainGet(target, path, headers, dropped, forwarded_for, forwarded_proto, keep_alive)


def _named(value: bytes) -> frozenset[bytes]:
    """The header names a Connection header's value lists (``gate.proxy.headers.end_to_end``)."""
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip())


def pds_request(get: PlainGet, fwd: Forwarded, path_prefix: str, host: str) -> bytes:
    """The bytes aiohttp's path sends the PDS for ``get`` (``gate.proxy.upstream.forwarded_headers``, then
    ``gate.proxy.lane_pass.request_head``): the headers without hop-by-hop and forwarding ones, Host
    first, the gate's forwarding headers last. Built from the parsed bytes without their copies."""
    target = get.target
    if target.find(b"?") == len(target) - 1:
        target = target[:-1]
    lines = [b"GET " + path_prefix.encode() + target + b" HTTP/1.1", b"Host: " + host.encode()]
    dropped = get.dropped
    for lower, name, value in get.headers:
        if lower in dropped:
            continue
        if lower == b"host":
            lines[1] = name + b": " + value
        else:
            lines.append(name + b": " + value)
    lines.append(b"X-Forwarded-For: " + fwd.x_forwarded_for.encode())
    lines.append(b"X-Forwarded-Proto: " + fwd.x_forwarded_proto.encode())
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


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
        # A request without forwarding headers is forwarded for its peer alone: worked out once per peer.
        self._unforwarded = functools.lru_cache(maxsize=4096)(self._resolve_unforwarded)

    def _resolve_unforwarded(self, peer: str | None) -> Forwarded:
        return resolve(peer, None, None, "http", self._trusted)

    def plain(self, head: bytes) -> PlainGet | None:
        if self._drain.started:  # the app's middleware closes each connection after its answer
            return None
        get = plain_get(head)
        if get is None:
            return None
        path = get.path
        if "%" in path:
            path = normalised_path(path)
            if path == GET_BLOB_PATH or path.startswith(LABEL_PATHS):
                return None
        else:
            # Without percent-encoding, normalising only folds case and drops "/", "./": a path it would
            # turn into one of these holds their words already (over-catching only costs speed).
            lower = path.lower()
            if _GET_BLOB_WORD in lower or _LABEL_WORDS in lower:
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
        if get.forwarded_for is None and get.forwarded_proto is None:
            fwd = self._unforwarded(peer)
        else:
            fwd = resolve(peer, get.forwarded_for, get.forwarded_proto, "http", self._trusted)
        keep_alive = get.keep_alive
        lane = self._lane_pass
        try:
            conn = await lane.send(pds_request(get, fwd, lane.path_prefix, lane.host), get.path)
            try:
                return await self._relay(conn, get.path, keep_alive, out)
            finally:
                lane.release(conn)
        except XrpcError as exc:  # always before anything of the answer was written
            keep_alive = keep_alive and not exc.closes_connection
            out.write(error_answer(exc, keep_alive))
            return keep_alive
        except Exception:
            log.exception("unhandled error on GET")
            out.write(error_answer(XrpcError(), keep_alive))
            return keep_alive

    async def _relay(self, conn: Connection, path: str, keep_alive: bool, out: Out) -> bool:
        head = _Answer(conn, path)
        small = head.length is not None and head.length <= self._lane_pass.small_body
        if small and not conn.done:
            await self._lane_pass.rest(conn)
        # As the app's middleware does once the gate is stopping: the answer closes its connection.
        keep_alive = keep_alive and not self._drain.started
        if small:
            out.write(head.serialised(conn.status, keep_alive, whole=True) + conn.take())
            await out.drained()
            return keep_alive
        chunked = head.length is None and conn.status not in EMPTY_BODY
        out.write(head.serialised(conn.status, keep_alive, whole=False))
        try:
            async for chunk in conn.body():
                out.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await out.drained()
        except PdsCut:
            out.cut()  # headers are sent: cut the client's connection, as the PDS cut the gate's
            return False
        except Exception:  # a bug; the head is sent, so no error answer can follow it: cut
            log.exception("unhandled error relaying GET %s", path)
            out.cut()
            return False
        if chunked:
            out.write(b"0\r\n\r\n")
        await out.drained()
        return keep_alive


class _Answer:
    """A PDS answer's head as aiohttp's path gives it back (``LanePass``, then ``gate.proxy.relayed``
    through aiohttp's server): the same refusals (502), the same headers dropped, and the headers
    aiohttp's ``Response._start`` and ``StreamResponse._prepare_headers`` add, in their order."""

    __slots__ = ("_banner", "_content_type", "_date", "headers", "length", "reason")

    def __init__(self, conn: Connection, path: str) -> None:
        raw = [(name, value.rstrip(b" \t")) for name, value in conn.headers]
        if any(b"\x00" in value for _, value in raw):  # as aiohttp's client refuses it
            log.warning("upstream GET %s failed: %s", path, "InvalidHeader")
            raise unreachable()
        for name, value in raw:
            if not value.isascii() and not _utf8(value):
                raise not_relayable(name.decode(), path)
        dropped = _HOP
        for name, value in raw:
            if name.lower() == b"connection":
                dropped = dropped | _named(value)
        spelled = _SPELLED
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None
        self._content_type = self._date = False
        server: bytes | None = None
        for name, value in raw:
            lower = name.lower()
            if lower in dropped:
                continue
            self.headers.append((spelled.get(lower) or name, value))
            if lower == b"content-length":
                self.length = int(value)  # llhttp has checked the digits
            elif lower == b"content-type":
                self._content_type = True
            elif lower == b"date":
                self._date = True
            elif lower == b"server" and server is None:
                server = value
        self._banner = server == _BANNER  # on_prepare looks at the first, and removes them all
        reason = conn.reason
        if not reason.isascii() and not _utf8(reason):
            log.warning("upstream GET %s failed: %s", path, "a reason that is not UTF-8")
            raise unreachable()
        self.reason = reason

    def serialised(self, status: int, keep_alive: bool, *, whole: bool) -> bytes:
        lines = [b"HTTP/1.1 %d %b" % (status, self.reason)]
        empty = status in EMPTY_BODY
        length = self.length
        for name, value in self.headers:
            if empty and name == b"Content-Length":
                continue
            if self._banner and name == b"Server":
                continue
            lines.append(name + b": " + value)
        if not empty:
            if length is None and not whole:
                lines.append(b"Transfer-Encoding: chunked")
            if (length is None or length) and not self._content_type:
                lines.append(b"Content-Type: application/octet-stream")
        if not self._date:
            lines.append(b"Date: " + http_date().encode())
        if not keep_alive:
            lines.append(b"Connection: close")
        lines.append(b"\r\n")
        return b"\r\n".join(lines)


def _utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


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
