"""A bounded, short-lived cache of HMA answers keyed by (signal type, hash, banks).

Repeated uploads of the same image should not repeat their lookups, but HMA content can be disabled at
any moment and new content becomes matchable within ~90 s, so answers live only ``ttl`` seconds.
Only successful answers are stored: a failure must be asked again, never remembered as "no match".
Least recently used entries go first when ``max_size`` is reached; ``max_size`` 0 disables the cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gate.types import SignalType


@dataclass(frozen=True, slots=True)
class Hit:
    """One entry of an HMA answer: a bank's content within the distance HMA allows."""

    bank: str
    content_id: int
    distance: int | None  # None for exact types ("-")


CacheKey = tuple[SignalType, str, tuple[str, ...] | None]


class AnswerCache:
    def __init__(self, max_size: int, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_size = max_size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[CacheKey, tuple[float, tuple[Hit, ...]]] = OrderedDict()

    @staticmethod
    def key(signal: SignalType, value: str, banks: tuple[str, ...] | None) -> CacheKey:
        return (signal, value, banks)

    def get(self, key: CacheKey) -> tuple[Hit, ...] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, hits = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return hits

    def put(self, key: CacheKey, hits: tuple[Hit, ...]) -> None:
        if self.max_size <= 0:
            return
        self._entries[key] = (self._clock() + self.ttl, hits)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
