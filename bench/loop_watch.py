"""``LoopWatch``: how long the event loop it runs in was held, and by the garbage collector, while a
benchmark block ran — what a latency difference between two configurations of an in-process gate comes
from (a loop held 3 ms delays every request that arrives meanwhile by up to 3 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

TICK = 0.001  # the ticker's sleep; a wake-up later than this by more than LATE counts as the loop held
LATE = 0.0005


@dataclass
class Held:
    """One block's figures: the loop's late wake-ups (s) and the collector's pauses (s, generation)."""

    lags: list[float] = field(default_factory=list)
    gc_pauses: list[tuple[float, int]] = field(default_factory=list)
    cpu: float = 0.0  # CPU seconds the loop's thread used: far steadier than latency on a busy machine
    others: dict[str, float] = field(default_factory=dict)  # CPU seconds of other processes, by the caller

    def held(self) -> float:
        """Seconds the loop was held beyond ``LATE`` per second of block: the share of time an arriving
        request waits on something else."""
        return sum(lag for lag in self.lags if lag > LATE)

    def worst(self) -> float:
        return max(self.lags, default=0.0)

    def gc_seconds(self, generation: int | None = None) -> float:
        return sum(s for s, g in self.gc_pauses if generation is None or g == generation)


class LoopWatch:
    def __init__(self) -> None:
        self.current: Held | None = None
        self._gc_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self.current is not None:
            self.current.gc_pauses.append((time.perf_counter() - self._gc_started, info["generation"]))

    async def _tick(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            if self.current is not None:
                self.current.lags.append(time.perf_counter() - started - TICK)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LoopWatch]:
        task = asyncio.create_task(self._tick())
        gc.callbacks.append(self._on_gc)
        try:
            yield self
        finally:
            gc.callbacks.remove(self._on_gc)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @contextlib.contextmanager
    def block(self) -> Iterator[Held]:
        self.current = held = Held()
        started = time.thread_time()
        try:
            yield held
        finally:
            held.cpu = time.thread_time() - started
            self.current = None
