"""``Pace``: a rate limit shared by concurrent workers (blobs per second, bytes per second).

A GCRA: each ``take(n)`` moves the theoretical arrival time on by ``n / rate`` and sleeps for whatever
lies more than ``burst`` seconds ahead, so the average never exceeds the rate and a quiet spell earns at
most ``burst`` seconds of credit. Bytes are taken after a blob is read (its size is known only then): a
large blob is paid for by the pause after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Pace:
    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate  # units per second; 0 = no limit
        self.burst = burst
        self._clock = clock
        self._tat = clock()

    def delay(self, n: float) -> float:
        """Book ``n`` units; the seconds to wait before they may be used."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        self._tat = max(self._tat, now) + n / self.rate
        return max(0.0, self._tat - now - self.burst)

    async def take(self, n: float = 1.0) -> None:
        wait = self.delay(n)
        if wait > 0:
            await asyncio.sleep(wait)
