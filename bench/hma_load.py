"""HMA at the speed of one lookup (issue 18, target 3), against the fake HMA in its own process at
HMA 1.1.7's measured 8 ms per lookup.

* **One upload's HMA step vs one lookup**, median over uploads, in the same run: a dihedral upload (8
  hashes, all looked up concurrently: HMA has no batch lookup) against an upload with one hash, on a fake
  that answers lookups concurrently (HMA with several workers) and on one that answers one at a time
  (one worker, as HMA's default gunicorn runs: there the 8 lookups queue at HMA whatever the gate does).
* **A burst beyond HMA's pace**: 128 dihedral uploads at once against one worker with the default
  3 s deadline. Peer: the most uploads one worker can answer whole within the deadline, from its own
  pace measured in the same run by a bare client sending lookups back to back (16 in flight). Reported:
  uploads judged, answered per ``on_matcher_error`` (and how: held back by the gate or timed out), the
  slowest answer, and whether the breaker opened.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from bench.hma import CONCURRENCY, SERVICE, fake_process
from bench.report import Report
from gate.matching.answer_cache import AnswerCache
from gate.matching.breaker import BreakerState, CircuitBreaker
from gate.matching.hma import HmaMatcher
from gate.matching.hma_client import HmaClient
from gate.policy.plan import compile_plan
from gate.types import Verdict
from tests.fakes.hma_support import BASE_PDQ, OTHER_PDQ, flip, hma_rule, image_hashes, make_policy

DEADLINE = 3.0  # GATE_HMA_DEADLINE's default
BURST = 128
POLICY = make_policy([hma_rule("hma", Verdict.REJECT, 31)], dihedral=True)
EIGHT = (BASE_PDQ, *(flip(OTHER_PDQ, n) for n in range(1, 8)))

T = TypeVar("T")


def _matcher(url: str, breaker: CircuitBreaker) -> HmaMatcher:
    client = HmaClient(url, timeout=2.0, max_connections=CONCURRENCY)
    return HmaMatcher(
        client,
        deadline=DEADLINE,
        request_timeout=2.0,
        concurrency=CONCURRENCY,
        cache=AnswerCache(0, 1.0),
        breaker=breaker,
    )


async def _step_ms(url: str, uploads: int) -> tuple[float, float]:
    """Median ms of the HMA step for one hash and for eight (dihedral), uploads alternating."""
    plan = compile_plan(POLICY)
    matcher = _matcher(url, CircuitBreaker(1000, 60.0))
    one: list[float] = []
    eight: list[float] = []
    try:
        for n in range(uploads + 3):  # the first three warm the connection pool
            for hashes, into in ((EIGHT[:1], one), (EIGHT, eight)):
                started = time.perf_counter()
                result = await matcher.match(image_hashes(*hashes, body=f"{n} {len(hashes)}".encode()), plan)
                if n >= 3:
                    into.append((time.perf_counter() - started) * 1000)
                assert not result.failures, result.failures
    finally:
        await matcher.aclose()
    return statistics.median(one), statistics.median(eight)


@dataclass
class Burst:
    pace: float  # lookups/s one worker answered to a bare client
    judged: int
    overloaded: int
    timed_out: int
    slowest: float  # seconds
    asked: int  # lookups sent to HMA during the burst
    breaker_opened: bool

    @property
    def possible(self) -> float:
        """Uploads one worker could answer whole within the deadline at that pace."""
        return self.pace * DEADLINE / len(EIGHT)


async def _pace(url: str, seconds: float = 1.5) -> float:
    """Lookups per second the fake answers to a bare client keeping CONCURRENCY in flight."""
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, trust_env=False) as bare:
        done = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                answer = await bare.get("/m/lookup", params={"signal_type": "pdq", "signal": BASE_PDQ})
                assert answer.status_code == 200
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - started)


async def _burst(url: str) -> Burst:
    pace = await _pace(url)
    opened: list[BreakerState] = []
    breaker = CircuitBreaker(3, 60.0, on_change=opened.append)
    matcher = _matcher(url, breaker)
    plan = compile_plan(POLICY)

    async def upload(n: int) -> tuple[float, set[str]]:
        started = time.perf_counter()
        result = await matcher.match(image_hashes(*EIGHT, body=f"burst {n}".encode()), plan)
        return time.perf_counter() - started, {f.kind for f in result.failures}

    try:
        await upload(-1)  # one upload first: a gate that has been running knows HMA's pace
        sent_before = matcher.queue.sent
        answers = await asyncio.gather(*(upload(n) for n in range(BURST)))
        asked = matcher.queue.sent - sent_before
    finally:
        await matcher.aclose()
    return Burst(
        pace=pace,
        judged=sum(1 for _, kinds in answers if not kinds),
        overloaded=sum(1 for _, kinds in answers if kinds == {"overloaded"}),
        timed_out=sum(1 for _, kinds in answers if "timeout" in kinds),
        slowest=max(seconds for seconds, _ in answers),
        asked=asked,
        breaker_opened=BreakerState.OPEN in opened,
    )


def _with_fake(serialise: bool, work: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """``work`` run against a fake HMA in its own process, given the fake's URL."""
    with fake_process(serialise) as url:
        return asyncio.run(work(url))


def run(report: Report, quick: bool) -> None:
    uploads = 30 if quick else 150
    table = report.table(
        f"HMA step per upload: 8 lookups (dihedral) vs 1, fake HMA at {SERVICE * 1000:.0f} ms per lookup",
        ["HMA", "one hash ms", "dihedral (8) ms", "dihedral / one lookup"],
        note="HMA has no batch lookup: an upload's hashes are asked concurrently. With several HMA "
        "workers they are answered together; one worker answers them one after another.",
    )
    ratios = {}
    for serialise, name in ((False, "answers concurrently (several workers)"), (True, "one worker")):
        one, eight = _with_fake(serialise, lambda url: _step_ms(url, uploads))
        ratios[serialise] = eight / one
        table.add(
            **{
                "HMA": name,
                "one hash ms": one,
                "dihedral (8) ms": eight,
                "dihedral / one lookup": f"{eight / one:.2f}×",
            }
        )
    report.target(
        "an upload's HMA step vs one lookup (dihedral, 8 hashes)",
        "≤ 1.3×",
        f"{ratios[False]:.2f}× with HMA answering concurrently; {ratios[True]:.1f}× against one HMA worker",
        ratios[False] <= 1.3,
        issue=18,
    )
    burst = _with_fake(True, _burst)
    table = report.table(
        f"{BURST} dihedral uploads at once against one HMA worker ({DEADLINE:g} s deadline)",
        [
            "HMA's pace, lookups/s",
            "most uploads it can answer in time",
            "judged",
            "judged / most possible",
            "on_matcher_error: held back",
            "on_matcher_error: timed out",
            "slowest answer s",
            "lookups sent",
            "breaker opened",
        ],
        note="Pace: a bare httpx client keeping 16 lookups in flight, same fake, same run. Held back: "
        "the gate's lookup queue saw they could not be answered before the deadline and did not send them "
        "(never counted against HMA's health).",
    )
    table.add(
        **{
            "HMA's pace, lookups/s": burst.pace,
            "most uploads it can answer in time": burst.possible,
            "judged": burst.judged,
            "judged / most possible": f"{burst.judged / burst.possible:.0%}",
            "on_matcher_error: held back": burst.overloaded,
            "on_matcher_error: timed out": burst.timed_out,
            "slowest answer s": burst.slowest,
            "lookups sent": burst.asked,
            "breaker opened": "yes" if burst.breaker_opened else "no",
        }
    )
    report.target(
        f"{BURST} concurrent dihedral uploads, one HMA worker",
        "all judged in the deadline or per on_matcher_error; breaker closed",
        f"{burst.judged} judged ({burst.judged / burst.possible:.0%} of the most possible), "
        f"{burst.overloaded + burst.timed_out} per on_matcher_error, slowest {burst.slowest:.2f} s; "
        f"breaker {'opened' if burst.breaker_opened else 'stayed closed'}",
        burst.slowest <= DEADLINE + 0.25 and not burst.breaker_opened,
        issue=18,
    )
