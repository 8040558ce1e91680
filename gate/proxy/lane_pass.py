"""Passthrough of a GET without a body on the lean client (``gate.proxy.lane``): the same request to the
PDS and the same answer to the client as aiohttp's client gives (``gate.proxy.upstream``), at about half
its CPU per request (docs/performance.md, "Passthrough, fourth pass").

What aiohttp's client writes for such a request, and so what is written here: ``GET <target> HTTP/1.1``
(the target as received, a bare trailing ``?`` dropped as yarl drops it), then ``Host`` first (the
client's, else the PDS's host and port), then the forwarded headers in their order, and nothing else
(the gate names every automatic header a request lacks, so aiohttp adds none; a keep-alive HTTP/1.1
request gets no ``Connection``). tests/integration/proxy/test_lane.py compares the bytes.
"""

from __future__ import annotations

import logging

from aiohttp import hdrs, web
from multidict import CIMultiDict, istr

from gate.errors import InvalidRequest
from gate.proxy.deadlines import Deadlines
from gate.proxy.headers import end_to_end, relayable
from gate.proxy.lane import Connection, PdsAnswerError, PdsCut
from gate.proxy.lane_pool import Lane
from gate.proxy.relayed import relayed, streamed, timed_out, unreachable

log = logging.getLogger(__name__)

# aiohttp's parser gives the headers it knows its own spelling (``ETag`` arrives as ``Etag``): so does
# the lane, from the same table, so the client sees the names it saw before.
SPELLING = {str(name).lower().encode(): str(name) for name in vars(hdrs).values() if isinstance(name, istr)}


def request_head(target: str, host: str, headers: CIMultiDict[str]) -> bytes:
    """The request's bytes as aiohttp's client writes a bodiless GET (``host``: the PDS's host[:port])."""
    if target.find("?") == len(target) - 1:
        target = target[:-1]
    host_line = "Host: " + host
    lines = ["GET " + target + " HTTP/1.1", host_line]
    for name, value in headers.items():
        if name.lower() == "host":
            lines[1] = name + ": " + value
        else:
            lines.append(name + ": " + value)
    head = "\r\n".join(lines)
    # Every part came through aiohttp's server parser, which refuses CR and LF in a target or a header;
    # checked again where they would split what the PDS reads (aiohttp's client refuses them too).
    if head.count("\r") != len(lines) - 1 or head.count("\n") != len(lines) - 1:
        raise InvalidRequest("A request line or header holds a line break")
    return (head + "\r\n\r\n").encode()


class LanePass:
    """``Upstream.passthrough`` for a GET without a body: sent on the lane, the answer relayed as
    ``Upstream`` relays aiohttp's (small and complete: one write; otherwise streamed), with the same
    deadlines, 502/504 answers and ``upload_gate_upstream_errors_total`` kinds."""

    def __init__(
        self, lane: Lane, deadlines: Deadlines, host: str, path_prefix: str, small_body: int
    ) -> None:
        self._lane = lane
        self._deadlines = deadlines
        self.host = host  # the PDS's host[:port], for a request without Host
        self.path_prefix = path_prefix  # what goes before a request's target (GATE_UPSTREAM's path)
        self.small_body = small_body  # an answer up to this long is read whole and given in one write

    async def passthrough(
        self, request: web.Request, headers: CIMultiDict[str], target: str
    ) -> web.StreamResponse:
        path = target.split("?", 1)[0]
        conn = await self.send(request_head(self.path_prefix + target, self.host, headers), path)
        try:
            return await self._relay(request, conn, path)
        finally:
            self._lane.release(conn)

    async def send(self, head: bytes, path: str) -> Connection:
        """Send a request's bytes and wait for its answer's head, within the PDS's deadline: the
        connection, or the gate's 502/504 (``path`` names the request in the log)."""
        try:
            async with self._deadlines.within():
                return await self._lane.request(head)
        except TimeoutError:
            raise timed_out() from None
        except (PdsAnswerError, OSError) as exc:
            log.warning("upstream GET %s failed: %s", path, type(exc).__name__)
            raise unreachable() from None

    def release(self, conn: Connection) -> None:
        self._lane.release(conn)

    async def _relay(self, request: web.Request, conn: Connection, path: str) -> web.StreamResponse:
        spelling = SPELLING
        answered = CIMultiDict(
            (
                spelling.get(name.lower()) or name.decode("utf-8", "surrogateescape"),
                value.rstrip(b" \t").decode("utf-8", "surrogateescape"),
            )
            for name, value in conn.headers
        )
        if any("\x00" in value for value in answered.values()):  # as aiohttp's client refuses it
            log.warning("upstream GET %s failed: %s", path, "InvalidHeader")
            raise unreachable()
        relayable(answered, path)
        headers = end_to_end(answered)
        reason = conn.reason.decode("utf-8", "surrogateescape")
        length = _length(answered)
        if length is not None and length <= self.small_body:
            if not conn.done:
                await self.rest(conn)
            return relayed(conn.status, reason, headers, conn.take())
        return await streamed(request, conn.status, reason, headers, conn.body(), (PdsCut,))

    async def rest(self, conn: Connection) -> None:
        """The rest of a small answer, under a deadline (nothing is sent yet: a failure is a clean 502)."""
        try:
            async with self._deadlines.within():
                while not conn.done:
                    if conn.error is not None:
                        raise PdsCut(str(conn.error))
                    await conn.more()
        except TimeoutError:
            raise timed_out() from None
        except PdsCut:
            raise unreachable() from None


def _length(headers: CIMultiDict[str]) -> int | None:
    value = headers.get("Content-Length")
    # llhttp has checked the digits; aiohttp's client reads the header the same way.
    return int(value) if value is not None else None
