"""The lean GET lane (gate.proxy.lane, gate.proxy.lane_pass) against aiohttp's client, which carries every
other request: the same request through both must reach the PDS as the same bytes, and the same PDS answer
must reach the client as the same bytes (Date aside; a body the gate chunks, on what its chunks carry)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from aiohttp.http import SERVER_SOFTWARE
from prometheus_client import REGISTRY

from gate.proxy.lane_pass import SPELLING
from tests.support.raw_pds import RawPds, answering, comparable, exchange_raw, front, raw_pds

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'

# Header names aiohttp spells its own way, but those that would take a request off the lean path.
KNOWN = sorted(
    name
    for name in SPELLING
    if name
    not in (
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"connection",
        b"sec-websocket-key1",
    )
)
# A plain GET: read and relayed by the front (gate.proxy.front) when the lean path is on.
PLAIN = (
    b"GET /xrpc/app.bsky.actor.getProfile?actor=did:plc:abc HTTP/1.1\r\nHost: pds.example.com\r\n"
    b"DPoP: proof\r\nAuthorization: DPoP tok\r\nAccept: */*\r\nUser-Agent: sdk/1\r\n"
    b"Accept-Encoding: gzip\r\nConnection: close\r\n\r\n"
)
REQUESTS = [
    b"GET /xrpc/com.atproto.sync.getBlob?did=did:plc:abc&cid=bafy%2Fx HTTP/1.1\r\nHost: pds.example.com\r\n"
    b"DPoP: proof\r\nAuthorization: DPoP tok\r\nAccept: */*\r\nUser-Agent: sdk/1\r\n"
    b"Accept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    # Lower-case names, a repeated header, no automatic headers at all, a UTF-8 value.
    b"GET /a/../b//c?q=%2F&&x HTTP/1.1\r\nhost: Pds.Example:8443\r\nx-thing: 1\r\nx-thing: 2\r\n"
    b"x-name: \xc3\xa9t\xc3\xa9\r\nconnection: close\r\n\r\n",
    # HTTP/1.0 without Host; a bare trailing "?"; forwarding headers from the client (replaced).
    b"GET /xrpc/x? HTTP/1.0\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nAccept: text/html\r\n\r\n",
    # An explicit empty body (no body for aiohttp either), hop-by-hop headers named by Connection.
    b"GET /xrpc/y?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n"
    b"TE: trailers\r\nKeep-Alive: 5\r\nExpect: 100-continue\r\n\r\n",
    # An absolute-form target is forwarded in origin form.
    b"GET http://pds.example.com/xrpc/z?b=2 HTTP/1.1\r\nHost: pds.example.com\r\nConnection: close\r\n\r\n",
    PLAIN,
    # Plain GETs too: names in any case, repeats, trailing whitespace, hop-by-hop headers and the
    # client's forwarding headers (dropped), a bare trailing "?".
    b"GET /a/../b//c?q=%2F&&x HTTP/1.1\r\nhost: Pds.Example:8443\r\nx-thing: 1\r\nx-thing: 2\r\n"
    b"accept-encoding: br \t\r\nconnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
    b"X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\netag: x\r\n\r\n",
    b"GET /xrpc/x? HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /t HTTP/1.1\r\nHost:h\r\nX-T: a\tb\r\nX-E:\r\nConnection: close\r\n\r\n",
    # Every name aiohttp knows, in lower case: it gives them its own spelling, and so must the front.
    b"GET /s HTTP/1.1\r\nHost: h\r\n"
    + b"".join(b"%s: 1\r\n" % name for name in KNOWN)
    + b"Connection: close\r\n\r\n",
]


async def _through_both(pds: RawPds, request: bytes, timeout: float = 5.0) -> tuple[bytes, bytes]:
    answers = []
    for lane in (False, True):
        async with front(pds.url, lane=lane, timeout=timeout) as (url, _):
            answers.append(comparable(await exchange_raw(url, request)))
    return answers[0], answers[1]


async def test_the_pds_receives_the_same_bytes_from_both_clients() -> None:
    async with raw_pds(answering(OK)) as pds:
        for request in REQUESTS:
            before = len(pds.heads)
            aiohttp_answer, lane_answer = await _through_both(pds, request)
            assert aiohttp_answer == lane_answer
            assert b" 200 OK\r\n" in lane_answer
            by_aiohttp, by_lane = pds.heads[before:]
            assert by_lane == by_aiohttp, request
    assert pds.heads[4].startswith(b"GET /xrpc/x HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"X-Forwarded-For: 127.0.0.1\r\n" in pds.heads[4] and b"6.6.6.6" not in pds.heads[4]
    assert pds.heads[8].startswith(b"GET /xrpc/z?b=2 HTTP/1.1\r\nHost: pds.example.com\r\n")
    assert pds.heads[13].startswith(b"GET /a/../b//c?q=%2F&&x HTTP/1.1\r\nHost: Pds.Example:8443\r\n")
    assert b"Accept-Encoding: br\r\nEtag: x\r\n" in pds.heads[13] and b"6.6.6.6" not in pds.heads[13]
    assert pds.heads[15].startswith(b"GET /xrpc/x HTTP/1.1\r\nHost: h\r\n")


async def test_a_header_repeated_in_another_case_reaches_the_pds_every_time() -> None:
    """The one difference: aiohttp's client keeps only the last of a repeated header whose repeats are
    spelt in different cases (its ``_prepare_headers`` tracks names case-sensitively); the lane forwards
    every line, as a proxy must (RFC 9110 §5.3)."""
    request = b"GET /x HTTP/1.1\r\nHost: h\r\nx-thing: 1\r\nX-Thing: 2\r\nConnection: close\r\n\r\n"
    async with raw_pds(answering(OK)) as pds:
        await _through_both(pds, request)
    by_aiohttp, by_lane = pds.heads
    assert b"x-thing: 1\r\nX-Thing: 2\r\n" in by_lane
    assert b"x-thing: 1" not in by_aiohttp.lower().replace(b"x-thing: 2", b"")


ANSWERS = {
    "small with length": OK,
    "no reason phrase": b"HTTP/1.1 201 \r\nContent-Length: 2\r\nX-A:  spaced  \r\n\r\nhi",
    "unusual reason": b"HTTP/1.1 401 Nope Not You\r\nWWW-Authenticate: DPoP\r\nDPoP-Nonce: n1\r\n"
    b"Content-Length: 0\r\n\r\n",
    "interim answers first": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    + OK,
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-B: 1\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "no content": b"HTTP/1.1 204 No Content\r\nX-C: 1\r\n\r\n",
    "not modified": b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n',
    "not modified with a length": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    "empty with a length": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "large without a type": b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + b"t" * 70000,
    # Every name aiohttp knows, in lower case, in two answers (more than its most headers in all).
    **{
        f"known names in lower case ({half})": b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"%s: 1\r\n" % name for name in KNOWN[half::2])
        + b"Content-Length: 2\r\n\r\nok"
        for half in (0, 1)
    },
    "the old websocket draft's key": b"HTTP/1.1 200 OK\r\nSec-WebSocket-Key1: 1\r\nContent-Length: 2\r\n\r\nok",
    "aiohttp's banner first": b"HTTP/1.1 200 OK\r\nServer: "
    + SERVER_SOFTWARE.encode()
    + b"\r\nServer: other\r\nContent-Length: 2\r\n\r\nok",
    "another banner first": b"HTTP/1.1 200 OK\r\nServer: other\r\nServer: "
    + SERVER_SOFTWARE.encode()
    + b"\r\nContent-Length: 2\r\n\r\nok",
    "hop-by-hop from the PDS": b"HTTP/1.1 200 OK\r\nConnection: X-Pds-Hop\r\nX-Pds-Hop: 1\r\n"
    b"Keep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
    "non-UTF-8 header": b"HTTP/1.1 200 OK\r\nX-Bad: caf\xe9\r\nContent-Length: 2\r\n\r\nok",
    "UTF-8 header": b"HTTP/1.1 200 OK\r\nX-Good: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\nok",
    "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "bad status line": b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",
    "larger than one write": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000,
    # What aiohttp's parser tolerates (its lenient llhttp) and what it refuses, as the lane must.
    "obsolete line folding": b"HTTP/1.1 200 OK\r\nX-F: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "bare line feeds": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "trailing whitespace": b"HTTP/1.1 200 OK\r\nX-T: v \t \r\nContent-Length: 2\r\n\r\nok",
    "NUL in a header": b"HTTP/1.1 200 OK\r\nX-N: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "too many headers": b"HTTP/1.1 200 OK\r\n"
    + b"".join(b"X-%d: 1\r\n" % i for i in range(130))
    + b"Content-Length: 2\r\n\r\nok",
    "a header too long": b"HTTP/1.1 200 OK\r\nX-L: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\nok",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "length and chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\nok\r\n0\r\n\r\n",
    "switching protocols unasked": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\n\r\nxyz",
}
REFUSED = (
    "non-UTF-8 header",
    "not HTTP",
    "bad status line",
    "NUL in a header",
    "too many headers",
    "a header too long",
    "two lengths",
    "length and chunked",
    "the old websocket draft's key",
)


@pytest.mark.parametrize("answer", list(ANSWERS))
async def test_the_client_receives_the_same_answer_from_both_clients(answer: str) -> None:
    async with raw_pds(answering(ANSWERS[answer])) as pds:
        aiohttp_answer, lane_answer = await _through_both(pds, PLAIN)
    assert lane_answer == aiohttp_answer
    if answer in REFUSED:
        assert lane_answer.startswith(b"HTTP/1.1 502 ")


@pytest.mark.parametrize(
    "head", [b"HTTP/1.1 200 OK\r\nX-D: 1", b"HTTP/1.0 200 OK", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip"]
)
async def test_an_answer_ended_by_the_close_is_relayed_whole(head: bytes) -> None:
    async with raw_pds(answering(head + b"\r\n\r\n" + b"y" * 300_000, keep=False)) as pds:
        aiohttp_answer, lane_answer = await _through_both(pds, PLAIN)
    assert lane_answer == aiohttp_answer
    assert lane_answer.endswith(b"y" * 300_000 + b"<end>")  # chunked to the client, whole


async def test_a_pds_that_closes_without_answering_gets_the_get_once_more_then_502() -> None:
    async def silent(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        return False

    async with raw_pds(silent) as pds:
        aiohttp_answer, lane_answer = await _through_both(pds, PLAIN)
        assert len(pds.heads) == 4  # aiohttp retries an idempotent request once; so does the lane
    assert lane_answer == aiohttp_answer
    assert lane_answer.startswith(b"HTTP/1.1 502 ")


async def test_a_stale_keep_alive_connection_is_replaced() -> None:
    """The PDS closes a pooled connection as the next request arrives on it: sent again, on a new one."""

    answered: set[asyncio.StreamWriter] = set()

    async def once_per_connection(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if writer in answered:
            return False  # the second request on a connection: closed unanswered
        answered.add(writer)
        writer.write(OK)
        await writer.drain()
        return True

    async with raw_pds(once_per_connection) as pds:
        for lane in (False, True):
            async with front(pds.url, lane=lane) as (url, _):
                for _ in range(2):
                    assert b" 200 OK\r\n" in await exchange_raw(url, PLAIN)
        assert len(pds.heads) == 6 and pds.connections == 4


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_pds_cut_in_a_large_body_cuts_the_client(framing: str) -> None:
    head = b"Content-Length: 1000000" if framing == "length" else b"Transfer-Encoding: chunked"
    body = b"z" * 200_000 if framing == "length" else b"30d40\r\n" + b"z" * 200_000 + b"\r\n"
    async with raw_pds(answering(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n" + body, keep=False)) as pds:
        aiohttp_answer, lane_answer = await _through_both(pds, PLAIN)
    assert lane_answer == aiohttp_answer
    assert lane_answer.startswith(b"HTTP/1.1 200 OK\r\n") and lane_answer.endswith(b"z" * 200_000)


PATTERN = bytes(range(256)) * 256  # 64 KB


async def test_a_50_mb_download_streams_with_back_pressure() -> None:
    """The PDS's socket is paused while the client does not read: the gate holds a bounded amount, and
    every byte arrives once the client reads."""
    total = 50 * 1024 * 1024
    sent = 0

    async def download(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        while sent < total:
            writer.write(PATTERN)
            sent += len(PATTERN)
            await writer.drain()
        return True

    async with raw_pds(download) as pds, front(pds.url, lane=True) as (url, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        writer.write(PLAIN)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 52428800\r\n" in head
        await asyncio.sleep(0.5)  # the client reads nothing: the PDS's writes stall on the way
        stalled_at = sent
        digest = hashlib.sha256()
        got = 0
        while chunk := await reader.read(1 << 20):
            digest.update(chunk)
            got += len(chunk)
        writer.close()
    assert stalled_at < total // 2, stalled_at  # only socket buffers and the lane's high-water mark
    assert got == total and digest.digest() == hashlib.sha256(PATTERN * 800).digest()


async def test_a_large_chunked_answer_streams_whole() -> None:
    pieces = [PATTERN[: 1000 + 7 * i] for i in range(300)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    async with raw_pds(answering(answer + chunked)) as pds:
        aiohttp_answer, lane_answer = await _through_both(pds, PLAIN)
    assert lane_answer == aiohttp_answer and lane_answer.endswith(b"".join(pieces) + b"<end>")


async def test_each_path_counts_the_request_and_the_gate_closes_its_idle_connections_on_stop() -> None:
    async with raw_pds(answering(OK)) as pds:
        for lane in (False, True):
            before = REGISTRY.get_sample_value("upload_gate_passthrough_requests_total", {"kind": "http"})
            async with front(pds.url, lane=lane) as (url, _):
                assert b" 200 OK\r\n" in await exchange_raw(url, PLAIN)
                assert pds.ended == int(lane)  # this path's connection is kept while the gate runs
            after = REGISTRY.get_sample_value("upload_gate_passthrough_requests_total", {"kind": "http"})
            assert after == (before or 0) + 1
            async with asyncio.timeout(2):
                while pds.ended < 1 + int(lane):  # Upstream.close() ended it
                    await asyncio.sleep(0.01)
