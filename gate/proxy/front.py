"""Plain GETs served before aiohttp's server sees them, with the bytes aiohttp's path would give.

Why: aiohttp's server (its request and response objects, the middleware, the router) cost ~20 µs of CPU
per small passthrough GET, a third of the gate's whole share, and it was what kept the gate's added
latency above issue 18's target (docs/performance.md, "Passthrough, fifth pass").

How: each connection of the public listener (``gate.proxy.connection``) reads request heads itself
first. A head that is a plain GET (``gate.proxy.plain_get``, where the trust boundary is drawn) goes to
the PDS on the lean client (``gate.proxy.lane_pass``) as the bytes aiohttp's path sends, and the answer
comes back as the bytes aiohttp's server writes (``gate.proxy.answer_bytes``). Anything else hands the
connection over to aiohttp from that request on, its bytes untouched: aiohttp's parser, the app's
middleware and every check see exactly what they saw before. tests/integration/proxy/test_lane.py,
test_lane_failures.py and test_front_requests.py compare the bytes both ways; test_front.py what follows
on the connection.
"""

from __future__ import annotations

import functools
import logging
from typing import Protocol

from aiohttp.helpers import EMPTY_BODY_STATUS_CODES

from gate import metrics
from gate.errors import XrpcError
from gate.proxy.answer_bytes import AnswerHead, error_answer
from gate.proxy.drain import Drain
from gate.proxy.forwarded import Forwarded, TrustedProxies, resolve
from gate.proxy.lane import Connection, PdsCut
from gate.proxy.lane_pass import LanePass
from gate.proxy.plain_get import PlainGet, pds_request, plain_get
from gate.proxy.routing import GET_BLOB_PATH, LABEL_PATHS, normalised_path

log = logging.getLogger(__name__)

_GET_BLOB_WORD = GET_BLOB_PATH.rsplit("/", 1)[1]  # "com.atproto.sync.getblob"
_LABEL_WORDS = LABEL_PATHS.rsplit("/", 1)[1]  # "com.atproto.label."


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
            keep_alive = keep_alive and not exc.closes_connection and not self._drain.started
            out.write(error_answer(exc, keep_alive))
            return keep_alive
        except Exception:
            log.exception("unhandled error on GET")
            keep_alive = keep_alive and not self._drain.started
            out.write(error_answer(XrpcError(), keep_alive))
            return keep_alive

    async def _relay(self, conn: Connection, path: str, keep_alive: bool, out: Out) -> bool:
        head = AnswerHead(conn, path)
        small = head.length is not None and head.length <= self._lane_pass.small_body
        if small and not conn.done:
            await self._lane_pass.rest(conn)
        # As the app's middleware does once the gate is stopping: every answer closes its connection.
        keep_alive = keep_alive and not self._drain.started
        if small:
            out.write(head.serialised(conn.status, keep_alive, whole=True) + conn.take())
            await out.drained()
            return keep_alive
        chunked = head.length is None and conn.status not in EMPTY_BODY_STATUS_CODES
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
