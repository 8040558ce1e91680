"""The PDS's failures before anything reached the client, both ways (aiohttp's server and client, and the
lean path: the front on the lean GET lane) against a bare-socket PDS: no accept within the connect timeout, no answer or a stalled
one within the answer's deadline (504), a cut answer or no PDS at all (502). Both give the client the
same answer and count the same ``upload_gate_upstream_errors_total`` kind; after a 504 the same gate
relays the next request once the PDS answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY

from tests.support.raw_pds import RawPds, answering, comparable, exchange_raw, front, raw_pds, unaccepting

# A plain GET (gate.proxy.front): the lean path's own 502/504 answers are what is compared.
GET = (
    b"GET /xrpc/app.bsky.feed.getTimeline?limit=1 HTTP/1.1\r\nHost: pds.example.com\r\n"
    b"Authorization: DPoP tok\r\nConnection: close\r\n\r\n"
)
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


def _errors(kind: str) -> float:
    value = REGISTRY.get_sample_value("upload_gate_upstream_errors_total", {"kind": kind})
    return value or 0.0


async def _counted_through_both(pds: RawPds, kind: str, timeout: float = 5.0) -> tuple[bytes, bytes]:
    """Both answers, and that each path counted one ``kind`` upstream error."""
    answers = []
    for lane in (False, True):
        before = _errors(kind)
        async with front(pds.url, lane=lane, timeout=timeout) as (url, _):
            answers.append(comparable(await exchange_raw(url, GET)))
        assert _errors(kind) == before + 1, lane
    return answers[0], answers[1]


TIMED_OUT = {"error": "UpstreamTimeout", "message": "The PDS did not answer in time"}


def _status_and_json(answer: bytes) -> tuple[bytes, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], json.loads(body)


async def _timed_out_then_served(
    pds: RawPds, ready: Callable[[], Awaitable[None]], **deadlines: float
) -> None:
    """Through both clients (each its own gate, open throughout): a 504 within ``deadlines``' shorter
    one, counted once as a ``timeout``; then, once ``ready`` has the PDS answering, the same gate's
    next request is relayed (nothing left behind by the first: no stuck connection, no closed pool)."""
    async with (
        front(pds.url, lane=False, **deadlines) as (by_aiohttp, _),
        front(pds.url, lane=True, **deadlines) as (by_lane, _),
    ):
        loop = asyncio.get_running_loop()
        for url in (by_aiohttp, by_lane):
            before, started = _errors("timeout"), loop.time()
            answer = await exchange_raw(url, GET)
            assert loop.time() - started < min(deadlines.values()) + 1.5, url
            assert _status_and_json(answer) == (b"HTTP/1.1 504 Gateway Timeout", TIMED_OUT), url
            assert _errors("timeout") == before + 1, url
        await ready()
        served = [comparable(await exchange_raw(url, GET)) for url in (by_aiohttp, by_lane)]
    assert served[0] == served[1] and served[1].startswith(b"HTTP/1.1 200 OK\r\n")


async def test_a_pds_that_does_not_accept_is_a_504_at_the_connect_timeout() -> None:
    """The connect timeout (GATE_UPSTREAM_CONNECT_TIMEOUT), well inside the answer's deadline, ends it."""
    async with unaccepting(answering(OK, keep=False)) as (pds, accept):
        await _timed_out_then_served(pds, accept, connect_timeout=0.3, timeout=5.0)
    assert len(pds.heads) == 2  # the served ones: a connect given up on never delivers a request later


async def test_a_pds_that_never_answers_is_a_504() -> None:
    mute = True

    async def muted(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if mute:
            await asyncio.sleep(1.5)
            return False
        return await answering(OK, keep=False)(pds, n, head, writer)

    async def speak() -> None:
        nonlocal mute
        mute = False

    async with raw_pds(muted) as pds:
        await _timed_out_then_served(pds, speak, timeout=0.3)
    assert len(pds.heads) == 2 + 2  # each asked once (a deadline is never retried), then answered


async def test_a_small_answer_that_stalls_is_a_504() -> None:
    async def stall(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await asyncio.sleep(1.5)
        return False

    async with raw_pds(stall) as pds:
        aiohttp_answer, lane_answer = await _counted_through_both(pds, "timeout", timeout=0.3)
    assert lane_answer == aiohttp_answer and lane_answer.startswith(b"HTTP/1.1 504 ")


async def test_a_small_answer_cut_short_is_a_502() -> None:
    async with raw_pds(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", keep=False)) as pds:
        aiohttp_answer, lane_answer = await _counted_through_both(pds, "unreachable")
    assert lane_answer == aiohttp_answer and lane_answer.startswith(b"HTTP/1.1 502 ")


async def test_an_unreachable_pds_is_a_502() -> None:
    async with raw_pds(answering(OK)) as pds:
        url = pds.url
    answers = []
    for lane in (False, True):
        before = _errors("unreachable")
        async with front(url, lane=lane) as (gate, _):
            answers.append(comparable(await exchange_raw(gate, GET)))
        assert _errors("unreachable") == before + 1
    assert answers[0] == answers[1] and answers[1].startswith(b"HTTP/1.1 502 ")
