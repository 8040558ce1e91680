"""A memory budget for upload bytes held at once across all concurrent uploads.

Past the budget a new upload is refused with 503 + Retry-After instead of exhausting the small VPS the
gate shares with the PDS. Reservations are taken before bytes are read and given back when done.
"""

from __future__ import annotations

from gate import metrics
from gate.errors import Overloaded


class MemoryBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        metrics.MEMORY_BUDGET_BYTES.set(limit)

    def reserve(self, n: int) -> None:
        if n <= 0:
            return
        if self.used + n > self.limit:
            metrics.BUDGET_REJECTIONS.inc()
            raise Overloaded()
        self.used += n
        metrics.BUFFERED_BYTES.set(self.used)

    def release(self, n: int) -> None:
        self.used = max(0, self.used - n)
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
