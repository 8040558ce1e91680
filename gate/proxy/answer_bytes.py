"""The bytes aiohttp's server writes for a relayed PDS answer and for the gate's own XRPC error, written by
the front (``gate.proxy.front``) itself: the same refusals, the same headers dropped and added, in the
same order (tests/integration/proxy/test_lane.py compares them with aiohttp's path byte for byte).
"""

from __future__ import annotations

import http
import logging
import time
from email.utils import formatdate

from aiohttp import hdrs
from aiohttp.helpers import EMPTY_BODY_STATUS_CODES
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

from gate.answers import NODE_REASONS, compact_json, with_cors
from gate.errors import XrpcError
from gate.proxy.headers import HOP_BY_HOP, not_relayable
from gate.proxy.lane import Connection
from gate.proxy.plain_get import SPELLED, named
from gate.proxy.relayed import unreachable

log = logging.getLogger(__name__)

_HOP = frozenset(name.encode() for name in HOP_BY_HOP)
_BANNER = SERVER_SOFTWARE.encode()  # aiohttp's Server header, which gate.answers.on_prepare removes


class AnswerHead:
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
                dropped = dropped | named(value)
        spelled = SPELLED
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
        empty = status in EMPTY_BODY_STATUS_CODES  # aiohttp's list: no body, no length
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
    with_cors(headers)
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
