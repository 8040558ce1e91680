"""Deadlines for the waits on the PDS, kept by one sweeping timer instead of a timer each.

A timer per request (``asyncio.timeout(seconds)``) puts a handle on the event loop's heap, where it
stays, cancelled, until the loop sweeps it out; at thousands of passthrough requests a second that
heap work was the largest single cost the gate adds to a small GET (measured: docs/performance.md).
So each wait is an ``asyncio.timeout(None)`` — asyncio's own cancellation and ``TimeoutError``, unchanged
— registered here with its deadline, and one timer, running only while waits are registered, expires
every wait whose deadline has passed: a wait ends between its deadline and one tick later.

Use, around one await::

    async with deadlines.within():
        ...
"""

from __future__ import annotations

import asyncio
from types import TracebackType

MAX_TICK = 1.0  # seconds; a tenth of the timeout when that is shorter


class Deadlines:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tick = min(MAX_TICK, timeout / 10)
        self._waits: dict[asyncio.Timeout, float] = {}
        self._sweep: asyncio.TimerHandle | None = None
        # The loop of the waits, kept from the first: asyncio.get_running_loop() costs a system call
        # (it checks the process id) and this runs on every passthrough request.
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, wait: asyncio.Timeout) -> None:
        """Expire ``wait`` (entered, with no deadline of its own) ``timeout`` seconds from now."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._waits[wait] = loop.time() + self.timeout
        if self._sweep is None:
            self._sweep = loop.call_later(self._tick, self._expire_due)

    def discard(self, wait: asyncio.Timeout) -> None:
        self._waits.pop(wait, None)

    def within(self) -> Within:
        """An ``async with`` block bounded by ``timeout`` (TimeoutError past it, as asyncio's own)."""
        return Within(self)

    def idle(self) -> bool:
        """No wait registered and no sweep pending."""
        return not self._waits and self._sweep is None

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._loop = None

    def _expire_due(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = [wait for wait, when in self._waits.items() if when <= now]
        for wait in due:
            del self._waits[wait]
            wait.reschedule(now)  # asyncio cancels the waiting task and raises TimeoutError in it
        self._sweep = loop.call_later(self._tick, self._expire_due) if self._waits else None


class Within:
    """One wait: asyncio's timeout entered with no deadline, registered for its deadline, unregistered
    before the timeout exits. A class, not a generator-based context manager: this runs twice on every
    passthrough request, and a generator costs more than the rest of it."""

    __slots__ = ("_deadlines", "_wait")

    def __init__(self, deadlines: Deadlines) -> None:
        self._deadlines = deadlines
        self._wait = asyncio.Timeout(None)  # asyncio.timeout(None), without its loop lookup

    async def __aenter__(self) -> None:
        await self._wait.__aenter__()
        self._deadlines.add(self._wait)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._deadlines.discard(self._wait)
        await self._wait.__aexit__(kind, exc, tb)  # turns its own cancellation into TimeoutError
