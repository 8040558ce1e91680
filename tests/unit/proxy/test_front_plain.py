"""What the front takes for itself (gate.proxy.front.plain_get, Front.plain): a strict subset of what
aiohttp's path accepts and passes through; everything else is handed to aiohttp as it came."""

from __future__ import annotations

import pytest

from gate.proxy.deadlines import Deadlines
from gate.proxy.drain import Drain
from gate.proxy.forwarded import TrustedProxies
from gate.proxy.front import Front
from gate.proxy.lane_pass import LanePass
from gate.proxy.lane_pool import Lane
from gate.proxy.plain_get import plain_get

BASE = b"GET /xrpc/app.bsky.actor.getProfile?actor=a HTTP/1.1\r\nHost: pds.example.com\r\n"


def head(extra: bytes = b"", start: bytes = BASE) -> bytes:
    return start + extra + b"\r\n"


def test_a_plain_get_is_taken_with_aiohttps_spelling_and_no_trailing_whitespace() -> None:
    get = plain_get(head(b"accept-encoding: gzip \t\r\nx-thing: 1\r\nX-Thing: 2\r\nConnection: close\r\n"))
    assert get is not None
    assert get.target == b"/xrpc/app.bsky.actor.getProfile?actor=a"
    assert get.path == "/xrpc/app.bsky.actor.getProfile"
    assert get.headers == [
        (b"host", b"Host", b"pds.example.com"),
        (b"accept-encoding", b"Accept-Encoding", b"gzip"),
        (b"x-thing", b"x-thing", b"1"),
        (b"x-thing", b"X-Thing", b"2"),
        (b"connection", b"Connection", b"close"),
    ]
    assert b"connection" in get.dropped and b"close" in get.dropped
    assert get.keep_alive is False
    kept = plain_get(head())
    assert kept is not None and kept.keep_alive is True


NOT_PLAIN = {
    "another method": head(start=BASE.replace(b"GET", b"HEAD", 1)),
    "a POST": head(start=BASE.replace(b"GET", b"POST", 1)),
    "HTTP/1.0": head(start=BASE.replace(b"HTTP/1.1", b"HTTP/1.0")),
    "absolute form": head(start=BASE.replace(b"GET /", b"GET http://h/", 1)),
    "asterisk form": b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
    "no Host": b"GET /x HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "two Hosts": head(b"Host: other\r\n"),
    "two User-Agents": head(b"User-Agent: a\r\nuser-agent: b\r\n"),
    "an empty body declared": head(b"Content-Length: 0\r\n"),
    "a body declared": head(b"Content-Length: 5\r\n"),
    "chunked": head(b"Transfer-Encoding: chunked\r\n"),
    "a websocket": head(b"Connection: Upgrade\r\nUpgrade: websocket\r\n"),
    "an upgrade header alone": head(b"Upgrade: h2c\r\n"),
    "Expect": head(b"Expect: 100-continue\r\n"),
    "UTF-8 in a value": head("X-Name: été\r\n".encode()),
    "a NUL": head(b"X-N: a\x00b\r\n"),
    "a control byte": head(b"X-N: a\x01b\r\n"),
    "a bare line feed": b"GET /x HTTP/1.1\nHost: h\r\n\r\n",
    "obsolete line folding": head(b"X-F: a\r\n b\r\n"),
    "a fragment": head(start=BASE.replace(b"actor=a", b"actor=a#f")),
    "a backslash": head(start=BASE.replace(b"/xrpc/", b"/xrpc\\")),
    "a space in the target": head(start=BASE.replace(b"actor=a", b"actor=a b")),
    "a leading empty line": b"\r\n" + head(),
    "a header name with a space": head(b"Bad Name: 1\r\n"),
    "longer than aiohttp's line": head(b"X-L: " + b"a" * 8200 + b"\r\n"),
    "more headers than aiohttp's": head(b"".join(b"X-%d: 1\r\n" % i for i in range(130))),
    "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
}


@pytest.mark.parametrize("case", list(NOT_PLAIN))
def test_anything_else_is_handed_to_aiohttp(case: str) -> None:
    assert plain_get(NOT_PLAIN[case]) is None


@pytest.mark.parametrize(
    "target",
    [
        b"/xrpc/com.atproto.sync.getBlob?did=d&cid=c",
        b"/XRPC/com.atproto.sync.getblob/?cid=c",
        b"/xrpc/com.atproto.sync.getBl%6Fb?cid=c",
        b"//xrpc/./com.atproto.sync.getBlob?cid=c",
        b"/xrpc/com.atproto.label.queryLabels?uriPatterns=*",
        b"/xrpc/com.atproto.label.subscribeLabels",
    ],
)
async def test_routes_the_app_serves_itself_are_the_apps(target: bytes) -> None:
    """getBlob (a blob the gate blocked is withheld) and the labeler's methods, in every spelling the
    router or the PDS would take."""
    front = _front(Drain(1.0))
    assert front.plain(head(start=b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n")) is None
    assert front.plain(head()) is not None


async def test_nothing_is_taken_once_the_gate_drains() -> None:
    drain = Drain(1.0)
    front = _front(drain)
    assert front.plain(head()) is not None
    drain.begin()
    assert front.plain(head()) is None  # aiohttp's path closes each connection after its answer


def _front(drain: Drain) -> Front:
    lane = LanePass(Lane("127.0.0.1", 9, 1.0), Deadlines(1.0), "127.0.0.1:9", "", 65536)
    return Front(lane, TrustedProxies(()), drain)
