"""The judge on its own, with no HTTP: bytes or hashes in, a decision out, the same for every path."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gate.hashing.hasher import Hasher, hash_bytes
from gate.judge import Context
from gate.matching.matcher import Matcher
from gate.policy.plan import Plan
from gate.types import DecisionSource, Hashes, MatchResult, Verdict
from tests.support.images import encode, photo
from tests.support.judge import LocalJudge, local_judge

POLICY = """
on_unhashable = "quarantine"
on_unscannable = "forward"
on_matcher_error = "{on_error}"
on_log_failure = "forward"
[[rules]]
name = "banned"
source = "local"
banks = ["block"]
signal_types = ["sha256", "pdq"]
max_distance = 10
action = "reject"
"""
BANNED = encode(photo("astronaut.png").resize((256, 256)), "PNG")
CLEAN = encode(photo("coffee.png").resize((256, 256)), "PNG")


@dataclass
class Broken:
    """A matcher whose lookups fail (as a bank behind an outage would): the judge must carry on."""

    name: str = "broken"
    fail: bool = True

    async def match(self, hashes: Hashes, plan: Plan) -> MatchResult:
        if self.fail:
            raise ConnectionError("the bank is unreachable")
        return MatchResult()

    def version(self) -> str:
        return "1"


@pytest.fixture
async def hasher() -> AsyncIterator[Hasher]:
    hasher = Hasher(workers=1)
    try:
        yield hasher
    finally:
        await hasher.close()


async def make(tmp_path: Path, hasher: Hasher, *extra: Matcher, on_error: str = "forward") -> LocalJudge:
    banned = [f"sha256,{hashlib.sha256(BANNED).hexdigest()}"]
    return await local_judge(tmp_path, POLICY.format(on_error=on_error), banned, hasher, *extra)


async def test_bytes_are_hashed_as_the_plan_says_matched_and_judged(tmp_path: Path, hasher: Hasher) -> None:
    parts = await make(tmp_path, hasher)
    context = Context(DecisionSource.BACKFILL)
    judged = await parts.judge.judge(BANNED, context)
    assert (judged.decision.verdict, judged.decision.rule) == (Verdict.REJECT, "banned")
    assert judged.hashes == hash_bytes(BANNED, parts.policy.plan.hashing)
    assert (judged.policy, judged.cached) == (parts.policy.current, False)
    assert list(context.timer.stages) == ["hash", "match", "evaluate"]
    clean = await parts.judge.judge(CLEAN, Context(DecisionSource.UPLOAD))
    assert (clean.decision.verdict, clean.decision.rule) == (Verdict.FORWARD, "no_match")


async def test_the_same_bytes_reuse_the_verdict_until_the_policy_changes(
    tmp_path: Path, hasher: Hasher
) -> None:
    parts = await make(tmp_path, hasher)
    first = await parts.judge.judge(BANNED, Context(DecisionSource.UPLOAD))
    again = await parts.judge.judge(BANNED, Context(DecisionSource.UPLOAD))
    assert (again.cached, again.decision) == (True, first.decision)
    parts.path.write_text(POLICY.format(on_error="reject"))
    assert await parts.policy.reload()
    changed = await parts.judge.judge(BANNED, Context(DecisionSource.UPLOAD))
    assert not changed.cached
    assert changed.decision.policy_version == parts.policy.current.version != first.decision.policy_version


async def test_hashes_are_matched_as_given_and_never_answered_from_the_cache(
    tmp_path: Path, hasher: Hasher
) -> None:
    parts = await make(tmp_path, hasher)
    known = hash_bytes(BANNED, parts.policy.plan.hashing)
    exact_only = replace(known, pdq=())  # e.g. a row of the decision log, or an API caller's digests
    for _ in range(2):
        context = Context(DecisionSource.RETRO)
        judged = await parts.judge.judge(exact_only, context)
        assert judged.hashes is exact_only and not judged.cached
        assert judged.decision.verdict is Verdict.REJECT
        assert [m.signal_type.value for m in judged.decision.matches] == ["sha256"]
        assert list(context.timer.stages) == ["match", "evaluate"]  # nothing hashed


async def test_a_failing_matcher_is_the_policys_choice_and_its_verdict_is_not_kept(
    tmp_path: Path, hasher: Hasher
) -> None:
    broken = Broken()
    parts = await make(tmp_path, hasher, broken, on_error="quarantine")
    judged = await parts.judge.judge(CLEAN, Context(DecisionSource.UPLOAD))
    assert (judged.decision.verdict, judged.decision.rule) == (Verdict.QUARANTINE, "on_matcher_error")
    assert judged.decision.notes == ("matcher_error: broken error",)
    broken.fail = False  # the outage is over: the same bytes get a full scan, not the kept failure
    retried = await parts.judge.judge(CLEAN, Context(DecisionSource.UPLOAD))
    assert (retried.cached, retried.decision.verdict) == (False, Verdict.FORWARD)
    assert (await parts.judge.judge(CLEAN, Context(DecisionSource.UPLOAD))).cached


async def test_a_repeat_in_the_same_scope_is_answered_after_a_sha256_only(tmp_path: Path) -> None:
    hasher = Hasher(workers=1)
    try:
        parts = await make(tmp_path, hasher)
        alice = Context(DecisionSource.UPLOAD, repeat_scope=b"alice")
        first = await parts.judge.judge(BANNED, alice)
        assert list(alice.timer.stages) == ["hash", "match", "evaluate"] and not first.cached
        # A policy change is a new judgement, whoever asks.
        parts.path.write_text(POLICY.format(on_error="reject"))
        assert await parts.policy.reload()
        again = Context(DecisionSource.UPLOAD, repeat_scope=b"alice")
        assert not (await parts.judge.judge(BANNED, again)).cached
        assert list(again.timer.stages) == ["hash", "match", "evaluate"]
    finally:
        await hasher.close()
    # No hashing is possible any more: only what the same scope judged before can still be answered.
    repeat = Context(DecisionSource.UPLOAD, repeat_scope=b"alice")
    judged = await parts.judge.judge(BANNED, repeat)
    assert judged.cached and list(repeat.timer.stages) == ["sha256"]
    assert (judged.hashes, judged.decision.verdict) == (first.hashes, Verdict.REJECT)
    assert judged.decision.policy_version == parts.policy.current.version
    # Another credential, or other bytes of the same length, are hashed: here they cannot be.
    same_length = BANNED[:-1] + bytes([BANNED[-1] ^ 1])
    for body, scope in ((BANNED, b"bob"), (same_length, b"alice"), (BANNED, None)):
        with pytest.raises(RuntimeError, match="Hasher is closed"):
            await parts.judge.judge(body, Context(DecisionSource.UPLOAD, repeat_scope=scope))
