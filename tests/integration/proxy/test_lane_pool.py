"""The lane's keep-alive pool (gate.proxy.lane.Lane) against a bare-socket PDS: which answers leave a
connection for the next request, and when an idle one is closed."""

from __future__ import annotations

import asyncio

import pytest

from gate.proxy.lane_pool import Lane
from tests.support.raw_pds import RawPds, answering, raw_pds

GET = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
KEPT = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _lane(pds: RawPds, keepalive: float = 15.0) -> Lane:
    port = int(pds.url.rsplit(":", 1)[1])
    return Lane("127.0.0.1", port, 2.0, keepalive=keepalive)


async def _get(lane: Lane) -> bytes:
    conn = await lane.request(GET)
    try:
        body = b""
        while chunk := await conn.read():
            body += chunk
        return body
    finally:
        lane.release(conn)


async def _until(condition: object, seconds: float = 2.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("answer", "connections"),
    [
        (KEPT, 1),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 3),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 3),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 1),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 1),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 1),
        (KEPT + b"HTTP/1.1 200 OK\r\n", 3),  # more than the answer, in the same packet: not reused
    ],
)
async def test_a_connection_is_reused_when_the_answer_keeps_it_alive(answer: bytes, connections: int) -> None:
    async with raw_pds(answering(answer)) as pds:
        lane = _lane(pds)
        for _ in range(3):
            assert await _get(lane) == (b"" if b" 204 " in answer else b"ok")
        lane.close()
        assert pds.connections == connections and len(pds.heads) == 3


async def test_an_answer_abandoned_midway_closes_its_connection() -> None:
    async with raw_pds(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")) as pds:
        lane = _lane(pds)
        conn = await lane.request(GET)
        lane.release(conn)  # the client left before the answer ended
        await _until(lambda: pds.ended == 1)
        conn = await lane.request(GET)
        lane.release(conn)
        lane.close()
        assert pds.connections == 2


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout() -> None:
    async with raw_pds(answering(KEPT)) as pds:
        lane = _lane(pds, keepalive=0.2)
        await _get(lane)
        await asyncio.sleep(0.1)
        assert pds.ended == 0
        await _until(lambda: pds.ended == 1)
        await _get(lane)  # a fresh connection
        assert pds.connections == 2
        lane.close()


async def test_close_ends_every_idle_connection() -> None:
    async with raw_pds(answering(KEPT)) as pds:
        lane = _lane(pds)
        await asyncio.gather(*(_get(lane) for _ in range(3)))
        assert pds.connections == 3 and pds.ended == 0
        lane.close()
        await _until(lambda: pds.ended == 3)


async def test_a_connection_the_pds_closed_while_idle_is_not_used() -> None:
    closed_once = False

    async def close_after_answer(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        nonlocal closed_once
        writer.write(KEPT)
        await writer.drain()
        keep = closed_once
        closed_once = True
        return keep  # the first connection is closed by the PDS once answered (keep-alive said)

    async with raw_pds(close_after_answer) as pds:
        lane = _lane(pds)
        await _get(lane)
        await asyncio.sleep(0.1)  # the PDS's FIN arrives while the connection is idle
        await _get(lane)
        lane.close()
        assert pds.connections == 2 and len(pds.heads) == 2  # not sent on the closed one, not retried


async def test_unasked_bytes_on_an_idle_connection_close_it() -> None:
    async def chatty(pds: RawPds, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(KEPT)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\n")  # nobody asked
        await writer.drain()
        return True

    async with raw_pds(chatty) as pds:
        lane = _lane(pds)
        await _get(lane)
        await _until(lambda: pds.ended == 1)
        await _get(lane)
        lane.close()
        assert pds.connections == 2
