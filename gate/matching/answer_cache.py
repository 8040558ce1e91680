"""A bounded, short-lived cache of HMA answers keyed by (signal type, hash, banks).

Repeated uploads of the same image should not repeat their lookups, but HMA content can be disabled at
any moment and new content becomes matchable within ~90 s, so answers live only ``ttl`` seconds.
Only successful answers are stored: a failure must be asked again, never remembered as "no match".
Least recently used entries go first when ``max_size`` is reached; ``max_size`` 0 disables the cache
(``gate.ttl_cache``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gate.signals import SignalType
from gate.ttl_cache import TtlCache


@dataclass(frozen=True, slots=True)
class Hit:
    """One entry of an HMA answer: a bank's content within the distance HMA allows."""

    bank: str
    content_id: int
    distance: int | None  # None for exact types ("-")


CacheKey = tuple[SignalType, str, tuple[str, ...] | None]


class AnswerCache(TtlCache[CacheKey, tuple[Hit, ...]]):
    @staticmethod
    def key(signal: SignalType, value: str, banks: tuple[str, ...] | None) -> CacheKey:
        return (signal, value, banks)
