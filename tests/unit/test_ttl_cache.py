"""The one LRU+TTL cache: bounded, least recently used out first, gone ``ttl`` after it was put."""

from __future__ import annotations

from gate.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_ttl_after_they_were_put_however_often_read() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(10, 5.0, clock=clock)
    cache.put("a", 1)
    clock.now = 4.9
    assert cache.get("a") == 1
    clock.now = 5.0
    assert cache.get("a") is None and len(cache) == 0


def test_least_recently_used_out_first_and_size_zero_is_off() -> None:
    cache: TtlCache[str, int] = TtlCache(2, 60.0)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    off: TtlCache[str, int] = TtlCache(0, 60.0)
    off.put("a", 1)
    assert off.get("a") is None and len(off) == 0
