"""How long an upload body may take to arrive: an idle limit and a minimum rate.

Trust boundary: the pace of a body is the client's to choose, and while it arrives it holds a
connection, a per-IP upload slot and every byte sent so far. So a body that sends nothing for ``idle``
seconds, or falls more than ``grace`` seconds behind ``min_rate`` bytes/s, is cut (408).

The rate is a leaky bucket rather than an average since the start: every byte buys ``1 / min_rate``
seconds, but the credit never exceeds ``grace`` seconds, so a fast start cannot pay for an endless
trickle afterwards. A body arriving at ``r < min_rate`` is cut ``grace / (1 - r / min_rate)`` seconds
after it slowed down (``grace`` when it sends nothing, unless ``idle`` comes first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Reason = Literal["idle", "rate"]


@dataclass
class Pace:
    idle: float  # seconds without a byte
    min_rate: int  # bytes/s; 0 = no minimum
    grace: float  # seconds a body may fall behind min_rate
    _last: float = field(default=0.0, init=False)
    _behind_at: float = field(default=math.inf, init=False)

    def start(self, now: float) -> None:
        self._last = now
        self._behind_at = now + self.grace if self.min_rate else math.inf

    def arrived(self, n: int, now: float) -> None:
        self._last = now
        if self.min_rate:
            self._behind_at = min(now + self.grace, self._behind_at + n / self.min_rate)

    def deadline(self) -> tuple[float, Reason]:
        """When the body is cut if nothing more arrives, and why."""
        idle_at = self._last + self.idle
        return (idle_at, "idle") if idle_at <= self._behind_at else (self._behind_at, "rate")
