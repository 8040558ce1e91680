"""One client connection of the public listener: aiohttp's request handler, inside a header deadline.

aiohttp has no header-read timeout: a connection that sends a request head one byte at a time
(slowloris), or connects and sends nothing, is only closed by its keep-alive timer after an hour. So
the listener wraps each of aiohttp's protocol objects (``web.Server`` is the protocol factory) in this
one, which passes every transport event through and keeps a clock: from the accept, and from the
first byte of each later request, the head must be complete within ``header_timeout`` seconds or the
connection is dropped. The clock stops when the gate's handler starts (``request_started``, called by
the app's middleware) and stays off between requests, where aiohttp's keep-alive timer rules: a
front proxy's idle pooled connections are not cut. Nor does the rest of a body the gate answered
unread (aiohttp reads and drops it, within its lingering time) start the clock.
"""

from __future__ import annotations

import asyncio
import enum

from aiohttp import StreamReader, web

from gate import metrics


class State(enum.Enum):
    FRESH = "fresh"  # accepted, no request yet: the clock runs
    IDLE = "idle"  # between requests (keep-alive): no clock
    HEAD = "head"  # the first bytes of a request arrived: the clock runs
    BUSY = "busy"  # a handler has the request
    # Answered before its body was read (a 401, 413, 429...): aiohttp reads and drops the rest of the
    # body (bounded by its lingering time). Those bytes are not a request head: no clock.
    REST = "rest"


class Connection(asyncio.Protocol):
    def __init__(self, inner: asyncio.Protocol, header_timeout: float, live: set[Connection]) -> None:
        self._inner = inner
        self._timeout = header_timeout
        self._live = live
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # loop time by which the head must be in; None: no clock
        self._transport: asyncio.Transport | None = None
        self._rest: StreamReader | None = None
        self.state = State.FRESH

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
        self._live.add(self)
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.state is State.IDLE and data:
            self.state = State.HEAD
            self._arm()
        self._inner.data_received(data)
        if self.state is State.REST and self._rest is not None and self._rest.is_eof():
            # The body is over. Whatever follows starts the next request (a head that began in this
            # very packet goes unclocked: aiohttp's keep-alive timer still bounds it).
            self.state, self._rest = State.IDLE, None

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._live.discard(self)
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

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

    # ---- the clock -------------------------------------------------------------------------------
    # Set and stopped on every request, so neither creates nor cancels a timer: a stopped clock only
    # forgets its deadline, and the one timer a connection has, when it fires, either finds the clock
    # stopped, or re-arms itself for a deadline that moved on, or expires the connection.

    def _arm(self) -> None:
        self._deadline = self._loop.time() + self._timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._expired)

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
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._expired)
            return
        if self.state in (State.FRESH, State.HEAD) and self._transport is not None:
            metrics.HEADER_TIMEOUTS.labels(self.state.value).inc()
            # Aborted, not closed: a client that sends this slowly may not read either.
            self._transport.abort()
