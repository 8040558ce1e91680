"""Repeat uploads of the same bytes reuse the earlier verdict (and hashes).

Clients re-send the whole upload after a DPoP-nonce 401, so the gate often sees the same bytes twice
within seconds. The key includes the policy version and every matcher's bank version: a policy or bank
change invalidates old verdicts by construction. Verdicts reached while a matcher failed are never
cached (the next try may get a full scan).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from gate.types import Decision, Hashes

Key = tuple[str, ...]


class VerdictCache:
    def __init__(self, size: int, ttl: float) -> None:
        self._size = size
        self._ttl = ttl
        self._items: OrderedDict[Key, tuple[float, Hashes, Decision]] = OrderedDict()

    def get(self, key: Key) -> tuple[Hashes, Decision] | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, hashes, decision = item
        if expires < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return hashes, decision

    def put(self, key: Key, hashes: Hashes, decision: Decision) -> None:
        if self._size <= 0:
            return
        self._items[key] = (time.monotonic() + self._ttl, hashes, decision)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
