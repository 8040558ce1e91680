"""One client connection of the public listener: the front's plain GETs, then aiohttp's request handler,
inside a header deadline.

The front (``gate.proxy.front``) reads each request head first: a plain GET it relays itself, and at the
first request that is anything else it hands the connection to aiohttp's handler (made then; ``web.Server``
is the protocol factory) with every byte not yet served, and passes every later transport event through.
Without a front (an https PDS, ``GATE_LEAN_PASSTHROUGH=off``) the handler has the connection from the start.

aiohttp has no header-read timeout: a connection that sends a request head one byte at a time
(slowloris), or connects and sends nothing, is only closed by its keep-alive timer after an hour. So
this keeps a clock: from the accept, and from the first byte of each later request, the head must be
complete within ``header_timeout`` seconds or the connection is dropped. The clock stops when a request
is served (the front's, or the gate's handler's: ``request_started``, called by the app's middleware) and
stays off between requests, where the keep-alive timer rules (aiohttp's, or the front's own of the same
length): a front proxy's idle pooled connections are not cut. Nor does the rest of a body the gate
answered unread (aiohttp reads and drops it, within its lingering time) start the clock.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from aiohttp import StreamReader, web

from gate import metrics
from gate.proxy.front import Front
from gate.proxy.plain_get import MAX_HEAD, PlainGet

log = logging.getLogger(__name__)

# How long a kept-alive connection may stay idle between the front's requests: aiohttp's own
# keepalive_timeout (web_protocol.RequestHandler), which rules once the connection is handed over.
KEEPALIVE = 3630.0


class State(enum.Enum):
    FRESH = "fresh"  # accepted, no request yet: the clock runs
    IDLE = "idle"  # between requests (keep-alive): no clock
    HEAD = "head"  # the first bytes of a request arrived: the clock runs
    BUSY = "busy"  # a handler has the request
    # Answered before its body was read (a 401, 413, 429...): aiohttp reads and drops the rest of the
    # body (bounded by its lingering time). Those bytes are not a request head: no clock.
    REST = "rest"


class Connection(asyncio.Protocol):
    def __init__(
        self,
        handlers: Callable[[], asyncio.Protocol],
        header_timeout: float,
        live: set[Connection],
        front: Front | None = None,
    ) -> None:
        self._handlers = handlers
        # aiohttp's request handler, made when the front hands the connection over (at once without one)
        self._inner: asyncio.Protocol | None = None if front is not None else handlers()
        self._front = front
        self._timeout = header_timeout
        self._live = live
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # loop time by which the head must be in; None: no clock
        self._transport: asyncio.Transport | None = None
        self._rest: StreamReader | None = None
        self.state = State.FRESH
        # The front's side (before any hand-over): bytes not yet a request, the request being served,
        # whether the client's writes or ours are paused, and whether the client sent its EOF.
        self._buffer = bytearray()
        self._serving: asyncio.Task[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._eof = False

    @staticmethod
    def of(request: web.BaseRequest) -> Connection | None:
        """The connection a request came on (None when the app is served without this wrapper)."""
        transport = request.transport
        protocol = transport.get_protocol() if transport is not None else None
        return protocol if isinstance(protocol, Connection) else None

    # ---- transport events, passed through --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer: str | None = peer[0] if peer else None  # as aiohttp's request.remote
        self._live.add(self)
        self._arm()
        if self._inner is not None:
            self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.state is State.IDLE and data:
            self.state = State.HEAD
            self._arm()
        if self._inner is None:
            self._buffer += data
            if self._serving is None:
                self._next()
            elif len(self._buffer) > MAX_HEAD and not self._reading_paused and self._transport is not None:
                self._reading_paused = True  # a pipelined request waits for its turn, unread
                self._transport.pause_reading()
            return
        self._inner.data_received(data)
        if self.state is State.REST and self._rest is not None and self._rest.is_eof():
            # The body is over. Whatever follows starts the next request (a head that began in this
            # very packet goes unclocked: aiohttp's keep-alive timer still bounds it).
            self.state, self._rest = State.IDLE, None

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()
        self._eof = True
        # Half-closed by the client: the answer being served is still written, then the connection closed.
        return self._serving is not None or None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._live.discard(self)
        self._transport = None
        if self._inner is not None:
            self._inner.connection_lost(exc)
            return
        if self._serving is not None:
            self._serving.cancel()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()
        elif self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
        elif self._writable is not None:
            writable, self._writable = self._writable, None
            if not writable.done():
                writable.set_result(None)

    # ---- the front (gate.proxy.front): plain GETs served here, anything else handed to aiohttp -----

    def _next(self) -> None:
        """Serve the buffered request if it is a plain GET; wait for the rest of its head; or hand the
        connection (and every byte not yet a request) over to aiohttp."""
        assert self._front is not None and self._transport is not None
        buffer = self._buffer
        if not buffer:
            if self._eof:
                self._transport.close()
            return
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            # Not a whole head yet: wait for more, unless it already cannot be a plain one.
            if len(buffer) > MAX_HEAD or buffer.count(b"\n") != buffer.count(b"\r\n") or self._eof:
                self._hand_over()
            return
        get = self._front.plain(bytes(buffer[: end + 4]))
        if get is None:
            self._hand_over()
            return
        del buffer[: end + 4]
        self.request_started()
        self._serving = self._loop.create_task(self._serve(get))

    async def _serve(self, get: PlainGet) -> None:
        assert self._front is not None
        try:
            keep_alive = await self._front.serve(get, self._peer, self)
        except Exception:  # the front answers every failure it knows; this is a bug: log it, cut
            log.exception("the front failed on a GET")
            keep_alive = False
        finally:
            self._serving = None
        transport = self._transport
        if transport is None:
            return
        if not keep_alive or (self._eof and not self._buffer):
            transport.close()
            return
        self.state = State.IDLE
        self._arm(KEEPALIVE)
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        if self._buffer:
            self.state = State.HEAD
            self._arm()
            self._next()

    def _hand_over(self) -> None:
        """From this request on, the connection is aiohttp's: its handler gets every byte not yet served."""
        assert self._transport is not None
        self._inner = inner = self._handlers()
        inner.connection_made(self._transport)
        data, self._buffer = bytes(self._buffer), bytearray()
        if self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()
        inner.data_received(data)
        if self._eof and inner.eof_received() is not True and self._transport is not None:
            self._transport.close()

    # Out: how the front writes its answer

    def write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    async def drained(self) -> None:
        if self._writable is not None:
            await self._writable

    def cut(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # ---- the request's life, told by the app -----------------------------------------------------

    def request_started(self) -> None:
        self.state = State.BUSY
        self._disarm()

    def request_finished(self, body: StreamReader) -> None:
        """The handler is done; ``body`` is the request's body stream, perhaps not read to its end."""
        if body.is_eof():
            self.state = State.IDLE
        else:
            self.state, self._rest = State.REST, body

    def close_if_waiting(self) -> None:
        """Close now unless a handler has a request (the gate is stopping)."""
        if self.state is not State.BUSY and self._transport is not None:
            self._transport.close()

    def close(self) -> None:
        """Close now, whatever it is doing (the gate has stopped: the drain is over)."""
        if self._transport is not None:
            self._transport.close()

    # ---- the clock -------------------------------------------------------------------------------
    # Set and stopped on every request, so neither creates nor cancels a timer: a stopped clock only
    # forgets its deadline, and the one timer a connection has, when it fires, either finds the clock
    # stopped, or re-arms itself for a deadline that moved on, or expires the connection. The timer is
    # never set more than one header timeout ahead, so no later head deadline can come before it (the
    # front's keep-alive deadline is longer: its timer wakes once a header timeout until then).

    def _arm(self, seconds: float | None = None) -> None:
        now = self._loop.time()
        self._deadline = now + (self._timeout if seconds is None else seconds)
        if self._timer is None:
            self._timer = self._loop.call_at(min(self._deadline, now + self._timeout), self._expired)

    def _disarm(self) -> None:
        self._deadline = None

    def _cancel(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        now = self._loop.time()
        if now < self._deadline:
            self._timer = self._loop.call_at(min(self._deadline, now + self._timeout), self._expired)
            return
        if self.state is State.IDLE and self._inner is None and self._transport is not None:
            self._transport.close()  # the front's keep-alive time is over (aiohttp's own, once handed over)
            return
        if self.state in (State.FRESH, State.HEAD) and self._transport is not None:
            metrics.HEADER_TIMEOUTS.labels(self.state.value).inc()
            # Aborted, not closed: a client that sends this slowly may not read either.
            self._transport.abort()
