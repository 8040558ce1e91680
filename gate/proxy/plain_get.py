"""The plain GET: what the front (``gate.proxy.front``) relays itself, read from a request head's bytes,
and the request it sends the PDS for it.

Trust boundary: what is served here is a strict subset of what aiohttp's path accepts and passes
through, so no request can mean one thing here and another there. A head is plain only if it is all of:
visible ASCII with CRLF line ends (no bare LF, no control byte) and at most ``MAX_HEAD`` bytes; a complete
HTTP/1.1 GET without a body by llhttp's strict parse (aiohttp's request parser is the same llhttp,
strict); an origin-form target without fragment or backslash; no header that frames a body or changes
the connection's protocol, a Host and no repeated singleton (aiohttp refuses either), at most aiohttp's
header count. ``Front.plain`` adds: not getBlob (a blob the gate blocked is withheld by the app), not a
route the app serves itself, and the gate not draining. Uploads are POSTs: never here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httptools
from aiohttp.http_parser import SINGLETON_HEADERS

from gate.proxy.forwarded import Forwarded
from gate.proxy.headers import HOP_BY_HOP
from gate.proxy.lane import MAX_FIELD, MAX_HEADERS
from gate.proxy.lane_pass import SPELLING
from gate.proxy.upstream import PASS_DROP

# aiohttp's parser limits (gate.proxy.lane has them): a head longer than its longest line or field, or with
# more headers, is aiohttp's to refuse.
MAX_HEAD = MAX_FIELD
_UNPLAIN = re.compile(rb"[^\t\r\n\x20-\x7e]")  # anything but visible ASCII, space, tab and line ends
# Headers that frame a body or change what the connection carries (and the old websocket draft's key,
# which aiohttp refuses): such a request is aiohttp's.
_HANDED = frozenset((b"content-length", b"transfer-encoding", b"upgrade", b"expect", b"sec-websocket-key1"))
# aiohttp's request parser refuses a second one of these (RFC 9110 singletons): its own list.
_SINGLETONS = frozenset(name.encode() for name in SINGLETON_HEADERS)
# The tables of aiohttp's path, as bytes: the names not passed on to the PDS (gate.proxy.headers,
# gate.proxy.upstream), aiohttp's spelling of the names it knows (gate.proxy.lane_pass).
_PASS_DROPPED = frozenset(name.encode() for name in HOP_BY_HOP | PASS_DROP)
SPELLED = {lower: name.encode() for lower, name in SPELLING.items()}


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
    spelled = SPELLED
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
            dropped = dropped | named(value)
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


def named(value: bytes) -> frozenset[bytes]:
    """The header names a Connection header's value lists (``gate.proxy.headers.end_to_end``)."""
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip())


def pds_request(get: PlainGet, fwd: Forwarded, path_prefix: str, host: str) -> bytes:
    """The bytes aiohttp's path sends the PDS for ``get`` (``Upstream._headers``, then
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
