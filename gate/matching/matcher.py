"""The Matcher protocol: anything that turns an upload's hashes into bank matches.

Implementations hold one resource each (``LocalBanks`` an in-memory index, ``HmaMatcher`` an HTTP
client). A matcher never raises for an upload: a failure comes back as a ``MatcherFailure`` so the
policy's ``on_matcher_error`` decides what happens, never an accident.
"""

from __future__ import annotations

from typing import Protocol

from gate.policy.plan import Plan
from gate.types import Hashes, MatchResult


class Matcher(Protocol):
    name: str

    async def match(self, hashes: Hashes, plan: Plan) -> MatchResult:
        """The matches for ``hashes``, looking up what ``plan`` (the compiled policy) asks of it."""
        ...

    def version(self) -> str:
        """Changes whenever the bank contents change (part of the verdict-cache key)."""
        ...
