"""Stopping without losing an answer: the public listener's state between SIGTERM and exit.

aiohttp's own shutdown stops reading every connection at once (its handlers drop incoming data once
closing), so an upload whose body was still arriving would wait for bytes that are thrown away and
then be cut without an answer. So the gate drains first (``gate.proxy.listener``):

1. the listener stops accepting and closes its idle connections;
2. bodies still arriving have the drain window to finish; at its end each is answered 503 with
   Retry-After and its reservation is freed — never a silent close;
3. uploads already read are judged and answered as usual; a new upload on a connection still open is
   answered 503 before its body is read;
4. once the requests in flight are done (or the stop bound passes), aiohttp closes what is left
   (firehose websockets, stalled downloads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from gate.settings import Settings


def stop_bound(settings: Settings) -> float:
    """The longest the public listener waits for requests in flight after SIGTERM: bodies get the
    drain window, and an upload read by then is still hashed, matched (GATE_HMA_DEADLINE) and
    forwarded (GATE_UPSTREAM_TIMEOUT) — a few seconds are left for hashing and the evidence store."""
    return settings.drain_timeout + settings.hma_deadline + settings.upstream_timeout + 5


class Drain:
    def __init__(self, window: float) -> None:
        self.window = window
        self.deadline: float | None = None  # loop time at which bodies still arriving are cut
        self._reads: set[asyncio.Timeout] = set()
        self._in_flight = 0
        self._settled: asyncio.Event | None = None

    @property
    def started(self) -> bool:
        return self.deadline is not None

    def begin(self) -> None:
        """Start the drain window (once); body reads waiting now are pulled in to its end."""
        if self.deadline is None:
            self.deadline = asyncio.get_running_loop().time() + self.window
            for timeout in self._reads:
                self._pull_in(timeout)

    def expired(self) -> bool:
        return self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline

    def _pull_in(self, timeout: asyncio.Timeout) -> None:
        assert self.deadline is not None
        when = timeout.when()
        if when is None or when > self.deadline:
            timeout.reschedule(self.deadline)

    @contextlib.contextmanager
    def bounding(self, timeout: asyncio.Timeout) -> Iterator[None]:
        """While a body read waits under ``timeout``, the drain deadline bounds it too."""
        if self.deadline is not None:
            self._pull_in(timeout)
        self._reads.add(timeout)
        try:
            yield
        finally:
            self._reads.discard(timeout)

    # A request in flight is counted by a pair of calls (the listener waits for these before closing
    # connections), not a context manager: this runs on every request, and a generator-based context
    # manager costs more than everything else here. The caller pairs them with try/finally.
    def request_started(self) -> None:
        self._in_flight += 1

    def request_done(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0 and self._settled is not None:
            self._settled.set()

    async def settled(self) -> None:
        """Return once no request is in flight (the caller bounds the wait)."""
        while self._in_flight:
            self._settled = asyncio.Event()
            await self._settled.wait()
