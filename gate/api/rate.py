"""``RateLimit``: a token bucket per API token, so one service cannot take the gate's hashing from uploads."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimit:
    """``rate`` requests a second sustained per name, ``burst`` at once. Names are authenticated token
    names (a handful, from Postgres), so the table stays small."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name: (tokens, when)

    def take(self, name: str) -> float:
        """0 when ``name`` may go now (one request taken), else the seconds until it may."""
        now = self._clock()
        tokens, then = self._buckets.get(name, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= 1:
            self._buckets[name] = (tokens - 1, now)
            return 0.0
        self._buckets[name] = (tokens, now)
        return (1 - tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """``Retry-After`` in whole seconds, never 0 (a client told 0 asks again at once)."""
        return str(max(1, math.ceil(wait)))
