"""Requests at the edge of what the lean path takes (gate.proxy.front.plain_get): whichever way each goes,
it reaches the PDS as the same bytes and gets the same answer as on aiohttp's path, or the same refusal
(tests/support/raw_pds.front with the lean path on and off)."""

from __future__ import annotations

import pytest

from tests.support.raw_pds import answering, comparable, exchange_raw, front, raw_pds

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


async def _both_ways(request: bytes) -> tuple[tuple[bytes, list[bytes]], tuple[bytes, list[bytes]]]:
    """Per way (aiohttp's, the lean path): the answer (Date aside) and the request heads the PDS got."""
    out = []
    async with raw_pds(answering(OK)) as pds:
        for lane in (False, True):
            async with front(pds.url, lane=lane) as (url, _):
                before = len(pds.heads)
                out.append((comparable(await exchange_raw(url, request)), pds.heads[before:]))
    return out[0], out[1]


# Requests aiohttp's parser refuses: the lean path must not take any of them (gate.proxy.front).
REFUSED_REQUESTS = [
    b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",  # no Host
    b"GET /x HTTP/1.1\r\nHost: h\r\nHost: i\r\nConnection: close\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: h\r\nUser-Agent: a\r\nuser-agent: b\r\nConnection: close\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: h\r\nX-N: a\x00b\r\nConnection: close\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: h\r\nX-F: a\r\n b\r\nConnection: close\r\n\r\n",  # obsolete folding
    b"GET /x HTTP/1.1\nHost: h\nConnection: close\n\n",  # bare line feeds
    b"GET /x HTTP/1.1\r\nHost: h\r\nX-L: " + b"a" * 9000 + b"\r\nConnection: close\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(130)) + b"\r\n",
    b"GET /x y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: h\r\nBad Name: 1\r\nConnection: close\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key1: 1\r\nConnection: close\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", REFUSED_REQUESTS)
async def test_a_request_aiohttp_refuses_is_refused_the_same_way(request_bytes: bytes) -> None:
    (aiohttp_answer, aiohttp_heads), (lane_answer, lane_heads) = await _both_ways(request_bytes)
    assert aiohttp_heads == lane_heads == []
    assert lane_answer == aiohttp_answer and lane_answer.startswith(b"HTTP/1.")
    assert b" 400 " in lane_answer.split(b"\r\n", 1)[0]


ODD_TARGETS = [
    b"//x/y?z",
    b"/%zz",
    b"/x??y",
    b"/x?a=%ZZ&b",
    b"/;p=1",
    b"/a%00b",
    b"/~!$&'()*+,;=:@",
    b"/x?[]{}|^`",
    b'/x"<>',
    b"/x?%",
    b"/\x7f",
]


@pytest.mark.parametrize("target", ODD_TARGETS)
async def test_an_odd_target_goes_the_same_both_ways(target: bytes) -> None:
    request = b"GET " + target + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    by_aiohttp, by_lane = await _both_ways(request)
    assert by_lane == by_aiohttp
