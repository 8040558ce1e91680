"""A memory budget for upload bytes held at once across all concurrent uploads.

Past the budget a new upload is refused with 503 + Retry-After instead of exhausting the small VPS the
gate shares with the PDS. Reservations are taken before bytes are read and given back when done.

What it counts is every copy of an upload's bytes the gate holds: the body in this process, as it
arrives (``Reservation``), the hashing worker's own copy while it hashes (``worker_copy``: the
body crosses a socket into another process, gate/hashing/pool.py, so it is held twice until the
answer is back), and, for a blocked upload whose evidence is kept, the ciphertext and asyncpg's
encoded copy of it until the INSERT is done (``evidence_copy``; gate.store.vault.held_while_kept).
A body therefore needs twice its size at its peak while hashed, which is why the settings insist on a
budget of at least twice the largest upload, and three times (and a little) while its evidence is
written: below that the largest blocked uploads keep no evidence (the policy's ``on_store_failure``).

Work that can wait its turn (``upload-gate scan``, the firehose watcher, a retro-hunt's evidence) takes
an ``Admission`` instead: it waits until its whole ``peak`` fits before it holds anything, so no job ever
waits while holding bytes another one needs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from gate import metrics
from gate.errors import Overloaded
from gate.store.vault import held_while_kept


def peak(size: int) -> int:
    """The most bytes a blob of ``size`` fetched from a PDS makes its job hold at once (a scan's, the
    firehose watcher's, a retro-hunt's review): its body, and beside it either its hashing worker's copy
    (or the reader's final copy of it) or its evidence being written (the ciphertext and asyncpg's copy,
    gate.store.vault) — the larger, admitted whole before it is read."""
    return size + max(size, held_while_kept(size))


class MemoryBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        # Of ``used``: copies that give themselves back on their own, within a deadline (the hashing
        # workers', evidence being written): what a read body may wait for instead of being refused.
        self.passing = 0
        self._freed: asyncio.Event | None = None  # set when bytes are given back; made on first wait
        self._admitting: asyncio.Lock | None = None  # admissions wait in turn (``Admission``)
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

    def worker_copy(self, n: int) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold ``n`` bytes for a hashing worker's copy of a body, for as long as the block runs."""
        return self._passing_copy(n, refusal=True)

    def evidence_copy(self, n: int) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold ``n`` bytes for a blocked body's evidence (its ciphertext, and asyncpg's encoded copy
        of it) from before it is sealed until the INSERT is done or has failed. Not fitting is the
        evidence store's failure (the policy's ``on_store_failure``, counted as evidence that failed),
        not a budget refusal: the policy may well block the upload without a 503."""
        return self._passing_copy(n, refusal=False)

    @contextlib.asynccontextmanager
    async def _passing_copy(self, n: int, *, refusal: bool) -> AsyncIterator[None]:
        """Unlike a body still arriving, the one copied here has been read whole: rather than refuse it
        at once, wait while another passing copy is out (hashing and evidence writes end within their
        deadlines and give theirs back). With none out, nothing that waiting could free is on its way:
        the budget is full of bodies still arriving or being forwarded, so this is refused (503)."""
        while self.used + n > self.limit:
            if self.passing == 0:
                if refusal:
                    metrics.BUDGET_REJECTIONS.inc()
                raise Overloaded()
            await self._wait_freed()
        self._take(n)
        self.passing += n
        try:
            yield
        finally:
            self.passing -= n
            self.release(n)

    async def admit(self, n: int) -> None:
        """Wait, holding nothing, until ``n`` bytes fit, then take them (for an ``Admission``)."""
        if n > self.limit:
            raise Overloaded(f"{n} bytes held at once cannot fit GATE_MEMORY_BUDGET_BYTES ({self.limit})")
        if self._admitting is None:
            self._admitting = asyncio.Lock()
        async with self._admitting:  # asyncio's Lock is FIFO; its holder holds no bytes while it waits
            while self.used + n > self.limit:
                await self._wait_freed()
            self._take(n)

    async def _wait_freed(self) -> None:
        if self._freed is None:
            self._freed = asyncio.Event()
        self._freed.clear()
        await self._freed.wait()

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


class Admission:
    """Bytes held by one job that can wait its turn (a backfill's blob): ``admit`` waits until the job's
    whole peak fits, then holds it; ``shrink_to`` gives back what the real size does not need; released
    once. The job holds nothing while it waits, so jobs that wait can never hold up one another for
    ever; only a peak over the whole budget is refused (``Overloaded``), as no wait could make it fit.
    Admissions wait in turn (first come, first admitted): a large blob is not passed for ever by small
    ones that would always fit before it."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.held = 0

    async def admit(self, n: int) -> None:
        if self.held:
            raise RuntimeError("admitted once only: a job that waits must not hold anything")
        await self._budget.admit(n)
        self.held = n

    def blob(self, too_large: Callable[[str], Exception]) -> Callable[[int], Awaitable[None]]:
        """What a blob reader awaits with a stored blob's size before reading it: the blob's whole
        ``peak`` admitted here. A peak over the whole budget raises ``too_large(why)``, the reader's own
        failure for a blob too large, as no wait could make it fit."""

        async def admit(size: int) -> None:
            try:
                await self.admit(peak(size))
            except Overloaded as exc:
                raise too_large(exc.message) from None

        return admit

    def shrink_to(self, n: int) -> None:
        if n < self.held:
            self._budget.release(self.held - n)
            self.held = n

    def release(self) -> None:
        self._budget.release(self.held)
        self.held = 0
