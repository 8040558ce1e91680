"""``TtlCache``: the gate's one bounded, short-lived cache (verdicts, HMA answers), on ``cachetools``.

Least recently used entries go first when ``size`` is reached; each entry is gone ``ttl`` seconds after it
was put, however often it is read. ``size`` 0 turns the cache off (``put`` keeps nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import cachetools

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, size: int, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_size = size
        self.ttl = ttl
        self._items: cachetools.TTLCache[K, V] = cachetools.TTLCache(max(size, 1), ttl, timer=clock)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        if self.max_size > 0:
            self._items[key] = value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
