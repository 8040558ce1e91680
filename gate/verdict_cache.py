"""Repeat uploads of the same bytes reuse the earlier verdict (and hashes).

Clients re-send the whole upload after a DPoP-nonce 401, so the gate often sees the same bytes twice
within seconds. The key includes the policy version and every matcher's bank version: a policy or bank
change invalidates old verdicts by construction. Verdicts reached while a matcher failed are never
cached (the next try may get a full scan).
"""

from __future__ import annotations

from gate.ttl_cache import TtlCache
from gate.types import Decision, Hashes

Key = tuple[str, ...]


class VerdictCache:
    """``size`` verdicts at most (least recently used out first), each for ``ttl`` seconds."""

    def __init__(self, size: int, ttl: float) -> None:
        self._items: TtlCache[Key, tuple[Hashes, Decision]] = TtlCache(size, ttl)

    def get(self, key: Key) -> tuple[Hashes, Decision] | None:
        return self._items.get(key)

    def put(self, key: Key, hashes: Hashes, decision: Decision) -> None:
        self._items.put(key, (hashes, decision))
