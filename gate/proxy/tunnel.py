"""A websocket after its handshake: bytes copied both ways between the client's connection and the
PDS's, frames never parsed — what nginx does once it has passed a ``101``.

Why bytes and not frames: the gate judges uploads, not frames, and re-sending each frame cost a
``send()`` per frame — 200 frames of 4 KB took the gate ~1.3 ms more than going direct (nginx:
~0.3 ms). Here one read (up to 256 KB, asyncio's) leaves in one write. Pings, pongs and the close
handshake pass end to end, like every other frame.

Both connections get a protocol of this module through asyncio's public ``Transport.set_protocol``.
The client's previous protocol (the listener's ``Connection`` around aiohttp's request handler) is
told ``connection_lost`` when the client's connection ends, as if it had never lent the transport.

Trust boundary:
- Bounded both ways: a direction holds at most one read plus the writer's buffer up to asyncio's
  high-water mark (64 KB); past that its reading side is paused, so a client that stops reading, or a
  frame of any size, only closes TCP windows: the gate's memory does not grow.
- Either end closing (or sending EOF) closes both. What is already buffered for the other end is
  flushed, for at most ``LINGER`` seconds: a peer that stopped reading is then aborted.
- Nor for ever: an end that takes none of what is buffered for it for ``STALL`` seconds (its writing
  stays paused) drops the tunnel, as nginx's ``send_timeout`` does. Without it a client that stops
  reading holds a full buffer in the gate, and both connections, until the client goes: the PDS's
  own heartbeat cannot free them, as nothing is read from (or written to) the PDS meanwhile. Such a drop
  is logged (the route and the side that stalled: no bytes, no DID) and counted
  (``upload_gate_websocket_stalls_total{side}``), as nginx logs a send_timeout.
- Bytes after the upgrade that are not websocket frames reach the other end as they are; the PDS's
  websocket refuses them and closes, which closes the client's side.
- Bytes a client sends before it has the ``101`` (RFC 6455 §4.1 forbids it) are not relayed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from gate import metrics

log = logging.getLogger(__name__)

Side = Literal["client", "pds"]

LINGER = 5.0  # seconds a closing end may take to flush what was relayed to it before it is aborted
# Seconds an end may leave what was relayed to it unread (its writing paused) before the tunnel is
# dropped. nginx's send_timeout (60 s by default) does the same for a client that stops reading.
STALL = 60.0


class _End(asyncio.Protocol):
    """One connection of the tunnel: what it reads goes to its peer."""

    def __init__(
        self, tunnel: Tunnel, side: Side, transport: asyncio.Transport, lent: asyncio.BaseProtocol | None
    ) -> None:
        self._tunnel = tunnel
        self.side = side
        self.transport = transport
        self.peer: _End = self
        self._lent = lent
        self._stalled: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        self.peer.transport.write(data)

    def eof_received(self) -> bool:
        self._tunnel.end()
        return True  # the tunnel closes it, after flushing what is still buffered for it

    # The peer's reading follows this end's write buffer: back-pressure passes end to end, for at most
    # STALL seconds at a time.
    def pause_writing(self) -> None:
        self.peer.transport.pause_reading()
        if self._stalled is None:
            self._stalled = self._tunnel.stall_timer(self.side)

    def resume_writing(self) -> None:
        self._unstall()
        self.peer.transport.resume_reading()

    def _unstall(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._unstall()
        self._tunnel.lost()
        if self._lent is not None:
            self._lent.connection_lost(exc)


class Tunnel:
    """Copies bytes between ``client`` and ``pds`` until either ends; ``closed`` is done once both
    connections are gone.

    ``early``: the PDS's bytes that came with its 101 (sent to the client first); ``pds_ended``: the
    PDS already sent EOF during the handshake; ``route``: the request's path (no query), for the log
    line of a stall. A transport already closing is not taken over (its
    ``connection_lost`` is on its way to its own protocol).
    """

    def __init__(
        self,
        client: asyncio.Transport,
        pds: asyncio.Transport,
        early: bytes,
        pds_ended: bool,
        stall: float = STALL,
        route: str = "",
    ) -> None:
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._stall = stall
        self._route = route
        self._transports = (client, pds)
        self._open = 0
        self._ending = False
        self._linger: asyncio.TimerHandle | None = None
        ends = (_End(self, "client", client, client.get_protocol()), _End(self, "pds", pds, None))
        ends[0].peer, ends[1].peer = ends[1], ends[0]
        for end in ends:
            if not end.transport.is_closing():
                end.transport.set_protocol(end)
                self._open += 1
        # Reading starts only now: the handshake paused the PDS's (aiohttp may have paused the client's).
        pds.resume_reading()
        client.resume_reading()
        if early:
            client.write(early)  # may pause the PDS's reading at once: the order above matters
        if pds_ended or self._open < 2:
            self.end()

    def end(self) -> None:
        """Close both connections (each flushes what it holds, for at most LINGER seconds)."""
        if self._ending:
            return
        self._ending = True
        for transport in self._transports:
            transport.close()
        if self._open:
            self._linger = self._loop.call_later(LINGER, self.abort)
        elif not self.closed.done():
            self.closed.set_result(None)

    def stall_timer(self, side: Side) -> asyncio.TimerHandle:
        return self._loop.call_later(self._stall, self._stalled, side)

    def _stalled(self, side: Side) -> None:
        """``side`` took none of what was buffered for it for ``stall`` seconds: drop the tunnel."""
        if not self._ending:  # a tunnel already closing is dropped by its linger, not by a stall
            metrics.WEBSOCKET_STALLS.labels(side).inc()
            log.warning(
                "websocket %s dropped: the %s read nothing of what was waiting for it for %g s",
                self._route[:200], side, self._stall,
            )  # fmt: skip
        self.abort()

    def abort(self) -> None:
        """Drop both connections now, buffered bytes included."""
        self._ending = True
        for transport in self._transports:
            transport.abort()

    def lost(self) -> None:
        self._open -= 1
        if self._open:
            self.end()
            return
        if self._linger is not None:
            self._linger.cancel()
        if not self.closed.done():
            self.closed.set_result(None)
