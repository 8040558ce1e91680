"""``LookupQueue``: how the gate's lookups reach HMA — at most ``concurrency`` in flight, the rest waiting
in arrival order, each with its upload's deadline.

HMA answers one hash per call (there is no batch lookup), and one HMA worker answers one call at a time
(~110 lookups/s measured). A burst of dihedral uploads (8 lookups each) can ask more than HMA can answer
within an upload's deadline. Letting every lookup wait for a slot until the deadline, then calling it a
timeout, held every upload for the whole deadline, failed most of them anyway, and counted HMA —
healthy, only busy — as failing, so the breaker opened for everyone. Instead:

* an upload's lookups are admitted together and queued together, so the uploads admitted first are
  answered first, whole;
* an upload whose lookups cannot be answered before its deadline at the pace HMA answers now is refused
  at once (``HmaBusy``), so ``on_matcher_error`` applies without waiting. The pace is Little's law:
  ``concurrency`` lookups in flight, each taking the recent latency (a moving average of answered ones);
* a waiting lookup whose upload has no time left for its round trip (twice the recent latency) is
  dropped before it is sent,
  and so are the rest of that upload's lookups: their answers could no longer change its verdict, and
  HMA's time goes to uploads that can still be judged.

``HmaBusy`` says the gate held lookups back, never that HMA failed: the breaker does not count it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gate.errors import Unavailable

SMOOTHING = 0.2  # weight of the newest latency in the moving average
# A lookup is sent only while its upload has this many recent latencies left: a lookup cut off by the
# deadline after it was sent is a timeout, which counts against HMA's health.
ROOM = 2.0


class HmaBusy(Unavailable):
    """The upload's lookups cannot be answered before its deadline; they were not sent."""


@dataclass
class Batch:
    """One upload's lookups: its deadline (loop time), and whether they were given up."""

    deadline: float
    size: int
    dropped: bool = False


class LookupQueue:
    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be ≥ 1")
        self.concurrency = concurrency
        self._in_flight = 0
        self._waiting: deque[tuple[asyncio.Future[None], Batch]] = deque()
        self._latency: float | None = None  # seconds, moving average of answered lookups
        self.sent = 0  # slots given to lookups, ever

    @property
    def latency(self) -> float | None:
        return self._latency

    @property
    def waiting(self) -> int:
        return sum(1 for fut, _ in self._waiting if not fut.done())

    def observe(self, seconds: float) -> None:
        """An answered lookup took ``seconds`` from its slot to its answer."""
        last = self._latency
        self._latency = seconds if last is None else last + SMOOTHING * (seconds - last)

    def expected(self, lookups: int) -> float:
        """Seconds until ``lookups`` more, queued behind those waiting now, would all be answered."""
        latency = self._latency
        if latency is None:
            return 0.0  # no answer seen yet: nothing to judge the pace by
        free = self.concurrency - self._in_flight
        rounds = max(0, self.waiting + lookups - free) / self.concurrency
        return (rounds + 1) * latency

    def admit(self, lookups: int, deadline: float) -> Batch:
        """One upload's lookups, admitted only if they can be answered before ``deadline``."""
        now = asyncio.get_running_loop().time()
        expected = self.expected(lookups)
        if now + expected > deadline:
            raise HmaBusy(
                f"HMA is answering {self.concurrency / (self._latency or 1):.0f} lookups/s and {self.waiting} "
                f"are waiting: this upload's {lookups} would take ~{expected:.2f}s, "
                f"{max(deadline - now, 0):.2f}s were left"
            )
        return Batch(deadline, lookups)

    @contextlib.asynccontextmanager
    async def slot(self, batch: Batch) -> AsyncIterator[None]:
        """Hold one of the ``concurrency`` slots for one lookup of ``batch`` (raises ``HmaBusy`` when
        the lookup was dropped while waiting)."""
        await self._acquire(batch)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, batch: Batch) -> None:
        if batch.dropped:
            raise HmaBusy("an earlier lookup of this upload was dropped")
        if self._in_flight < self.concurrency and not self._waiting:
            self._in_flight += 1
            self.sent += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((waiter, batch))
        try:
            await waiter
            self.sent += 1
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release()  # the slot was handed over just as this lookup gave up: pass it on
            raise

    def _release(self) -> None:
        """A slot came free: it passes to the first waiting lookup whose upload still has time for it."""
        now = asyncio.get_running_loop().time()
        room = ROOM * (self._latency or 0.0)
        while self._waiting:
            waiter, batch = self._waiting.popleft()
            if waiter.done():  # given up (the upload's deadline, or its client went away)
                continue
            if batch.dropped or batch.deadline - now < room:
                batch.dropped = True
                waiter.set_exception(HmaBusy("dropped before it was sent: no time left for its answer"))
                continue
            waiter.set_result(None)
            return
        self._in_flight -= 1
