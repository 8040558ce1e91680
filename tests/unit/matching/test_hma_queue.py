"""HMA busy, not failing: a burst of uploads asks more than one HMA worker can answer within an upload's
deadline. Every upload is judged within its deadline or answered per ``on_matcher_error`` ("overloaded",
decided at once where the pace says so), and the breaker stays closed: HMA answered all it was asked."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY

from gate.matching.breaker import BreakerState, CircuitBreaker
from gate.policy.evaluate import evaluate
from gate.policy.plan import compile_plan
from gate.types import Verdict
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import (
    BASE_PDQ,
    OTHER_PDQ,
    flip,
    hma_rule,
    image_hashes,
    make_matcher,
    make_policy,
)

DIHEDRAL = make_policy(
    [hma_rule("any", Verdict.REJECT, 31)], dihedral=True, on_matcher_error=Verdict.QUARANTINE
)
EIGHT = (BASE_PDQ, *(flip(OTHER_PDQ, n) for n in range(1, 8)))


def transitions(state: str) -> float:
    return REGISTRY.get_sample_value("upload_gate_hma_breaker_transitions_total", {"state": state}) or 0.0


async def test_a_burst_beyond_hmas_pace_is_judged_in_time_or_refused_without_opening_the_breaker(
    fake_hma: FakeHma,
) -> None:
    fake_hma.latency, fake_hma.serialise = 0.008, True  # one HMA worker: ~125 lookups/s
    deadline = 0.8
    breaker = CircuitBreaker(3, 60.0)
    opened = transitions("open")
    plan = compile_plan(DIHEDRAL)
    async with make_matcher(fake_hma.url, deadline=deadline, breaker=breaker) as matcher:

        async def upload(n: int) -> tuple[float, Verdict, set[str]]:
            hashes = image_hashes(*EIGHT, body=f"upload {n}".encode())
            started = time.monotonic()
            result = await matcher.match(hashes, plan)
            decision = evaluate(DIHEDRAL, hashes, result)
            return time.monotonic() - started, decision.verdict, {f.kind for f in result.failures}

        # Warm: HMA's pace is known from the answers to a first upload.
        assert (await upload(-1))[2] == set()
        asked_before = len(fake_hma.lookups)
        answers = await asyncio.gather(*(upload(n) for n in range(128)))
        asked = len(fake_hma.lookups) - asked_before

    judged = [a for a in answers if not a[2]]
    refused = [a for a in answers if a[2]]
    assert judged and refused  # HMA answered some uploads whole; the rest could not be in time
    # Held back by the gate, or (rarely, on a loaded host) cut off by the deadline while HMA answered others.
    assert set().union(*(kinds for _, _, kinds in refused)) <= {"overloaded", "timeout"}
    assert sum("overloaded" in kinds for _, _, kinds in refused) >= len(refused) * 0.9
    assert {verdict for _, verdict, _ in judged} == {Verdict.REJECT}  # BASE_PDQ is banked
    # on_matcher_error, unless the banked hash's own lookup was answered before the rest were given up
    assert (
        Verdict.QUARANTINE in {verdict for _, verdict, _ in refused} <= {Verdict.QUARANTINE, Verdict.REJECT}
    )
    print(f"judged {len(judged)}, refused {len(refused)}, lookups asked {asked}")
    assert max(seconds for seconds, _, _ in answers) < deadline + 0.3
    assert breaker.state is BreakerState.CLOSED and transitions("open") == opened
    # HMA's time went to uploads that were judged: few lookups were asked for uploads given up.
    assert asked <= 8 * len(judged) + 2 * 8
