"""A circuit breaker: stop calling a service that keeps failing, probe it again later.

Closed: every call goes through; ``failure_threshold`` consecutive failures open it. Open: calls are
refused at once (the caller records ``breaker_open``) until ``reset_after`` seconds have passed; then
it is half-open and lets exactly one probe through. The probe's success closes it, its failure opens it
for another ``reset_after``. A refused call costs nothing, which is the point: an upload should not wait
out a timeout for a service that has been failing for the last few uploads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int,
        reset_after: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or reset_after <= 0:
            raise ValueError("failure_threshold must be ≥ 1 and reset_after > 0")
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self.on_change = on_change  # e.g. to export the state as a metric
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose wait is over reads as half-open)."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_after:
            return BreakerState.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """May a call go ahead? In half-open state only one call (the probe) is let through."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probing:
            return False
        self._set(BreakerState.HALF_OPEN)
        self._probing = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._probing = False
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._probing = False
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def release(self) -> None:
        """A call that was allowed ended without telling anything about the service (e.g. a 4xx)."""
        self._probing = False

    def _set(self, state: BreakerState) -> None:
        changed = state is not self._state
        self._state = state
        if changed and self.on_change is not None:
            self.on_change(state)
