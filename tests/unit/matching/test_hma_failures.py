"""Every way HMA can fail comes back as a MatcherFailure (never an exception, never "no match")."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from gate.matching.breaker import CircuitBreaker
from gate.policy.plan import compile_plan
from gate.types import Verdict
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import BASE_PDQ, OTHER_PDQ, hma_rule, image_hashes, make_matcher, make_policy

ANY_HMA = make_policy([hma_rule("any", Verdict.REJECT, 31)])


def breaker_state() -> float | None:
    return REGISTRY.get_sample_value("upload_gate_hma_breaker_state")


def failures_counted(kind: str) -> float:
    return REGISTRY.get_sample_value("upload_gate_hma_failures_total", {"kind": kind}) or 0.0


@pytest.mark.parametrize(
    ("switch", "kind", "detail"),
    [
        ("http_500", "http_5xx", "500 Internal Server Error"),
        ("not_ready", "not_ready", "503 index not yet ready"),
        ("malformed", "malformed", "not JSON"),
        ("wrong_shape", "malformed", "not a JSON object"),
        ("bad_distance", "malformed", "distance 'near'"),
        ("http_400", "http_4xx", "400 invalid signal"),
        ("drop", "error", "ServerDisconnectedError"),
    ],
)
async def test_a_failing_hma_gives_a_failure_of_a_bounded_kind(
    fake_hma: FakeHma, switch: str, kind: str, detail: str
) -> None:
    fake_hma.fail = switch
    before = failures_counted(kind)
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(image_hashes(BASE_PDQ, OTHER_PDQ), compile_plan(ANY_HMA))
    assert result.matches == ()
    assert [(f.matcher, f.kind) for f in result.failures] == [("hma", kind)]
    assert result.failures[0].detail.startswith("2 of 2 lookups")
    assert detail in result.failures[0].detail
    assert failures_counted(kind) == before + 1


async def test_connection_refused(fake_hma: FakeHma) -> None:
    async with make_matcher(fake_hma.url) as matcher:
        await fake_hma.stop()
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
    assert [f.kind for f in result.failures] == ["refused"]


async def test_a_slow_hma_times_out_per_request(fake_hma: FakeHma) -> None:
    fake_hma.latency = 1.0
    async with make_matcher(fake_hma.url, timeout=0.1, deadline=5.0) as matcher:
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
    assert [f.kind for f in result.failures] == ["timeout"]


async def test_the_upload_deadline_bounds_the_whole_step_and_is_never_retried_past(fake_hma: FakeHma) -> None:
    fake_hma.fail = "hang"  # answers after 30 s
    async with make_matcher(fake_hma.url, timeout=10.0, deadline=0.3, retries=5) as matcher:
        started = time.monotonic()
        result = await matcher.match(image_hashes(BASE_PDQ, OTHER_PDQ), compile_plan(ANY_HMA))
        waited = time.monotonic() - started
    assert [f.kind for f in result.failures] == ["timeout"]
    assert "0.3s HMA deadline" in result.failures[0].detail
    assert waited < 10  # far below the 30 s the fake would take: the deadline ended it
    assert len(fake_hma.lookups) == 2  # a timeout is not retried


async def test_a_dropped_connection_is_retried_once_within_the_deadline(fake_hma: FakeHma) -> None:
    fake_hma.fail, fake_hma.fail_next = "drop", 1
    async with make_matcher(fake_hma.url, retries=1) as matcher:
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
    assert result.failures == ()
    assert [m.bank for m in result.matches] == ["BANK_A"]
    assert len(fake_hma.lookups) == 2


async def test_partial_failure_keeps_the_matches_that_did_come_back(fake_hma: FakeHma) -> None:
    fake_hma.fail, fake_hma.fail_next, fake_hma.serialise = "http_500", 1, True
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(image_hashes(BASE_PDQ, OTHER_PDQ), compile_plan(ANY_HMA))
    assert len(result.matches) == 1
    assert [(f.kind, f.detail[:15]) for f in result.failures] == [("http_5xx", "1 of 2 lookups:")]


@pytest.mark.parametrize(
    ("ready", "stale", "detail"), [(False, False, "INDEX-NOT-LOADED"), (True, True, "INDEX-STALE")]
)
async def test_an_index_not_ready_or_stale_is_a_failure_not_no_match(
    fake_hma: FakeHma, ready: bool, stale: bool, detail: str
) -> None:
    async with make_matcher(fake_hma.url) as matcher:
        assert matcher.ready()
        fake_hma.ready, fake_hma.stale = ready, stale
        status = await matcher.refresh_status()
        assert not matcher.ready() and detail in status.detail
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
        assert [f.kind for f in result.failures] == ["not_ready"] and detail in result.failures[0].detail
        assert fake_hma.lookups == []  # a stale index's "no match" is not asked for
        fake_hma.ready, fake_hma.stale = True, False
        await matcher.refresh_status()
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
    assert matcher.ready() and result.failures == () and len(result.matches) == 1


async def test_lookups_answering_503_while_status_said_ready_are_not_ready(fake_hma: FakeHma) -> None:
    async with make_matcher(fake_hma.url) as matcher:
        fake_hma.ready = False  # HMA restarted since the last /status probe
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
    assert [f.kind for f in result.failures] == ["not_ready"]
    assert "index not yet ready" in result.failures[0].detail


async def test_many_uploads_at_once_share_the_gate_wide_concurrency_limit(fake_hma: FakeHma) -> None:
    fake_hma.latency = 0.02
    async with make_matcher(fake_hma.url) as matcher:
        results = await asyncio.gather(
            *(
                matcher.match(image_hashes(BASE_PDQ, body=str(n).encode()), compile_plan(ANY_HMA))
                for n in range(30)
            )
        )
    assert all(r.failures == () and len(r.matches) == 1 for r in results)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_breaker_opens_after_consecutive_failures_then_probes_and_closes(fake_hma: FakeHma) -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10.0, clock=clock)
    fake_hma.fail = "http_500"
    async with make_matcher(fake_hma.url, breaker=breaker) as matcher:
        for _ in range(2):
            result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
            assert [f.kind for f in result.failures] == ["http_5xx"]
        asked = len(fake_hma.lookups)
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
        assert [f.kind for f in result.failures] == ["breaker_open"]
        assert len(fake_hma.lookups) == asked  # an open breaker does not call HMA at all
        assert breaker_state() == 2
        clock.now += 10  # half-open: one probe goes through, fails, and opens it again
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
        assert [f.kind for f in result.failures] == ["http_5xx"]
        assert len(fake_hma.lookups) == asked + 1
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
        assert [f.kind for f in result.failures] == ["breaker_open"]
        fake_hma.fail = None
        clock.now += 10  # the next probe succeeds and closes it
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
        assert result.failures == () and len(result.matches) == 1
        result = await matcher.match(image_hashes(BASE_PDQ, OTHER_PDQ), compile_plan(ANY_HMA))
        assert result.failures == () and len(result.matches) == 2
        assert breaker_state() == 0


async def test_client_errors_do_not_open_the_breaker(fake_hma: FakeHma) -> None:
    fake_hma.fail = "http_400"
    async with make_matcher(fake_hma.url, breaker=CircuitBreaker(1, 60.0)) as matcher:
        kinds = [
            [f.kind for f in (await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))).failures]
            for _ in range(3)
        ]
    assert kinds == [["http_4xx"]] * 3


async def test_a_cancelled_probe_upload_does_not_leave_the_breaker_stuck(fake_hma: FakeHma) -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    fake_hma.fail = "http_500"
    async with make_matcher(fake_hma.url, breaker=breaker) as matcher:
        await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))  # opens it
        clock.now += 10
        fake_hma.fail, fake_hma.latency = None, 5.0
        probe = asyncio.create_task(matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA)))
        while len(fake_hma.lookups) < 2:  # the probe's lookup has reached HMA
            await asyncio.sleep(0.01)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        fake_hma.latency = 0.0
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
    assert result.failures == () and len(result.matches) == 1
