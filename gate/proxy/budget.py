"""A memory budget for upload bytes held at once across all concurrent uploads.

Past the budget a new upload is refused with 503 + Retry-After instead of exhausting the small VPS the
gate shares with the PDS. Reservations are taken before bytes are read and given back when done.

What it counts is every copy of an upload's bytes the gate holds: the body in this process, as it
arrives (``Reservation``), and the hashing worker's own copy while it hashes (``worker_copy``: the
body crosses a socket into another process, gate/hashing/pool.py, so it is held twice until the
answer is back). A body therefore needs twice its size at its peak, which is why the settings insist
on a budget of at least twice the largest upload.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gate import metrics
from gate.errors import Overloaded


class MemoryBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.hashing = 0  # of ``used``: the hashing workers' copies held now
        self._freed: asyncio.Event | None = None  # set when bytes are given back; made on first wait
        metrics.MEMORY_BUDGET_BYTES.set(limit)

    def reserve(self, n: int) -> None:
        if n <= 0:
            return
        if self.used + n > self.limit:
            metrics.BUDGET_REJECTIONS.inc()
            raise Overloaded()
        self._take(n)

    def release(self, n: int) -> None:
        self.used = max(0, self.used - n)
        metrics.BUFFERED_BYTES.set(self.used)
        if self._freed is not None:
            self._freed.set()

    @contextlib.asynccontextmanager
    async def worker_copy(self, n: int) -> AsyncIterator[None]:
        """Hold ``n`` bytes for a hashing worker's copy of a body, for as long as the block runs.

        Unlike a body still arriving, this one has been read whole: rather than refuse it at once, wait
        while another worker's copy is out (hashing ends within its deadline and gives it back). With
        none out, nothing that waiting could free is on its way: the budget is full of bodies still
        arriving or being forwarded, so this upload is refused (503), which gives its own bytes back.
        """
        while self.used + n > self.limit:
            if self.hashing == 0:
                metrics.BUDGET_REJECTIONS.inc()
                raise Overloaded()
            if self._freed is None:
                self._freed = asyncio.Event()
            self._freed.clear()
            await self._freed.wait()
        self._take(n)
        self.hashing += n
        try:
            yield
        finally:
            self.hashing -= n
            self.release(n)

    def _take(self, n: int) -> None:
        self.used += n
        metrics.BUFFERED_BYTES.set(self.used)


class Reservation:
    """Bytes reserved for one upload; grows as a chunked body arrives; released once."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.held = 0

    def grow_to(self, n: int) -> None:
        if n > self.held:
            self._budget.reserve(n - self.held)
            self.held = n

    def release(self) -> None:
        self._budget.release(self.held)
        self.held = 0
