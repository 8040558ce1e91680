"""The judge: bytes (or their hashes) in, a decision out — ``hash → match → evaluate`` — for every path.

The upload path (``gate.pipeline``) asks it, and so will every other path that judges bytes: blobs the
PDS already stores, re-judging after a bank changes, the firehose, the hash/match API. One judge means
one set of bytes gets the same decision whichever path saw it. It owns what judging needs — the plan
the policy compiles to (what to hash, what to look up), the matchers, the verdict cache and
``evaluate`` — and nothing about HTTP: reading, credentials, acting and answering belong to the path.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gate import metrics
from gate.hashing.hasher import Hasher
from gate.matching.matcher import Matcher
from gate.policy.evaluate import evaluate
from gate.policy.model import Policy
from gate.policy.plan import Plan
from gate.policy.reload import PolicyHolder
from gate.ttl_cache import TtlCache
from gate.types import Decision, DecisionSource, Hashes, Match, MatcherFailure, MatchResult

log = logging.getLogger("gate.decisions")

# Repeat uploads of the same bytes reuse the earlier verdict: clients re-send the whole upload after a
# DPoP-nonce 401, so the gate often sees the same bytes twice within seconds. The key is the SHA-256,
# the policy version and every matcher's bank version, so a policy or bank change invalidates old
# verdicts by construction; a verdict reached while a matcher failed is never kept.
CacheKey = tuple[str, ...]
# Bodies up to this size are SHA-256'd on the event loop (~0.5 ms a MB); larger ones in a thread.
INLINE_SHA256 = 1 << 20


@dataclass(frozen=True, slots=True)
class Seen:
    """A judgement kept for a repeat of the same bytes within the same scope (``Context.repeat_scope``):
    found by the body's length, then confirmed by its SHA-256 and the versions it was judged under."""

    versions: CacheKey
    hashes: Hashes
    decision: Decision


@dataclass
class Timer:
    """Per-stage wall time, for the record and the stage histogram."""

    stages: dict[str, float] = field(default_factory=dict)
    _t: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        elapsed = now - self._t
        self._t = now
        self.stages[stage] = elapsed * 1000
        metrics.STAGE_SECONDS.labels(stage).observe(elapsed)


@dataclass(frozen=True, slots=True)
class Context:
    """Who asks (the path, whose records carry it) and the clock its stages are timed on (the path's
    own stages share it)."""

    source: DecisionSource
    timer: Timer = field(default_factory=Timer)
    # Who may be answered from an earlier judgement of the same bytes *before they are hashed* (a
    # SHA-256 only, no decoding). The upload path passes a fingerprint of the caller's credential, so
    # only the same credential's repeat (a DPoP-nonce retry) takes the shortcut: a different credential
    # pays the full judgement, and its timing says nothing about what anyone else uploaded. None: the
    # bytes are always hashed (the shared verdict cache, after hashing, still applies).
    repeat_scope: bytes | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the judge found: the path acts on ``decision`` and records it."""

    hashes: Hashes
    decision: Decision
    policy: Policy  # the one it was judged under: the path acts under the same one
    cached: bool = False  # the decision of an earlier judgement of the same bytes
    failed: bool = field(default=False, repr=False, compare=False)  # a matcher failed: not cacheable


async def match_all(matchers: Sequence[Matcher], hashes: Hashes, plan: Plan) -> MatchResult:
    """Every matcher in parallel; their matches and failures merged. A matcher that raises anyway is a
    failure for this upload (so ``on_matcher_error`` decides), never a crash."""
    results = await asyncio.gather(*(m.match(hashes, plan) for m in matchers), return_exceptions=True)
    found: list[Match] = []
    failures: list[MatcherFailure] = []
    for matcher, result in zip(matchers, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            log.error("matcher %s raised %s", matcher.name, type(result).__name__, exc_info=result)
            failures.append(MatcherFailure(matcher.name, "error", type(result).__name__))
        else:
            found.extend(result.matches)
            failures.extend(result.failures)
    return MatchResult(tuple(found), tuple(failures))


class Judge:
    def __init__(
        self,
        policy: PolicyHolder,
        hasher: Hasher,
        matchers: Sequence[Matcher],
        cache: TtlCache[CacheKey, Decision],
        repeats: TtlCache[tuple[bytes, int], Seen] | None = None,
    ) -> None:
        self.policy = policy
        self.hasher = hasher
        self.matchers = tuple(matchers)
        self.cache = cache
        # Keyed by (scope, body length): a miss costs nothing, not even the SHA-256.
        self.repeats = repeats if repeats is not None else TtlCache(cache.max_size, cache.ttl)

    async def judge(self, subject: bytes | Hashes, context: Context) -> Judgement:
        """Judge bytes (hashed here, as the plan says) or hashes computed before (matched as given),
        under the policy in force now."""
        plan = self.policy.plan  # one plan for the whole judgement, whatever reloads meanwhile
        if isinstance(subject, Hashes):
            # The caches are for the same *bytes*: hashes may be partial, so they are matched as given.
            return await self._decide(subject, plan, context)
        # A policy or bank change makes a new key: an old verdict is never reused across one.
        versions = (plan.version, *(m.version() for m in self.matchers))
        scope, size = context.repeat_scope, len(subject)
        repeat = await self._repeat(subject, scope, versions) if scope is not None else None
        if repeat is not None:
            context.timer.lap("sha256")
            metrics.VERDICT_CACHE_HITS.inc()
            return Judgement(repeat.hashes, repeat.decision, plan.policy, cached=True)
        hashes = await self.hasher.hash(subject, plan.hashing)
        context.timer.lap("hash")
        key = (hashes.sha256, *versions)
        decision = self.cache.get(key)
        if decision is not None:
            metrics.VERDICT_CACHE_HITS.inc()
            judged = Judgement(hashes, decision, plan.policy, cached=True)
        else:
            judged = await self._decide(hashes, plan, context)
            if judged.failed:  # a failed matcher's verdict may improve on retry: never kept
                return judged
            self.cache.put(key, judged.decision)
        if scope is not None:
            self.repeats.put((scope, size), Seen(versions, hashes, judged.decision))
        return judged

    async def _decide(self, hashes: Hashes, plan: Plan, context: Context) -> Judgement:
        result = await match_all(self.matchers, hashes, plan)
        context.timer.lap("match")
        decision = evaluate(plan.policy, hashes, result)
        context.timer.lap("evaluate")
        return Judgement(hashes, decision, plan.policy, failed=bool(result.failures))

    async def _repeat(self, body: bytes, scope: bytes, versions: CacheKey) -> Seen | None:
        """The judgement of these very bytes kept for ``scope`` under ``versions``, if there is one."""
        seen = self.repeats.get((scope, len(body)))
        if seen is None or seen.versions != versions:
            return None
        if len(body) <= INLINE_SHA256:
            sha256 = hashlib.sha256(body).hexdigest()
        else:  # hashlib drops the GIL: other requests go on while a large body is hashed
            sha256 = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
        return seen if sha256 == seen.hashes.sha256 else None
