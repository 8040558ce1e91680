"""The HMA answer cache: repeated uploads do not repeat lookups; answers expire; failures are not kept."""

from __future__ import annotations

from prometheus_client import REGISTRY

from gate.matching.answer_cache import AnswerCache, Hit
from gate.policy.plan import compile_plan
from gate.signals import SignalType
from gate.types import Verdict
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import BASE_PDQ, OTHER_PDQ, hma_rule, image_hashes, make_matcher, make_policy

ANY_HMA = make_policy([hma_rule("any", Verdict.REJECT, 31)])


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def cache_count(result: str) -> float:
    return REGISTRY.get_sample_value("upload_gate_hma_cache_total", {"result": result}) or 0.0


async def test_a_repeated_upload_is_answered_from_the_cache(fake_hma: FakeHma) -> None:
    hits_before, misses_before = cache_count("hit"), cache_count("miss")
    async with make_matcher(fake_hma.url, cache_size=100) as matcher:
        first = await matcher.match(image_hashes(BASE_PDQ, OTHER_PDQ), compile_plan(ANY_HMA))
        second = await matcher.match(
            image_hashes(BASE_PDQ, OTHER_PDQ, body=b"another upload"), compile_plan(ANY_HMA)
        )
    assert first.matches == second.matches and len(first.matches) == 2
    assert len(fake_hma.lookups) == 2
    assert (cache_count("hit") - hits_before, cache_count("miss") - misses_before) == (2, 2)


async def test_answers_are_keyed_by_banks_too(fake_hma: FakeHma) -> None:
    async with make_matcher(fake_hma.url, cache_size=100) as matcher:
        await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
        only_b = await matcher.match(
            image_hashes(BASE_PDQ),
            compile_plan(make_policy([hma_rule("b", Verdict.REJECT, 31, banks=["BANK_B"])])),
        )
    assert only_b.matches == ()
    assert [q.get("banks") for q in fake_hma.lookups] == [None, "BANK_B"]


async def test_answers_expire_after_the_ttl_so_disabled_content_stops_matching(fake_hma: FakeHma) -> None:
    clock = Clock()
    async with make_matcher(fake_hma.url, cache_size=100, cache_ttl=30.0, clock=clock) as matcher:
        assert len((await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))).matches) == 1
        fake_hma.contents[1].enabled = False  # an operator disabled it in HMA
        clock.now += 29
        assert len((await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))).matches) == 1
        clock.now += 1
        assert (await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))).matches == ()
    assert len(fake_hma.lookups) == 2


async def test_failures_are_never_cached(fake_hma: FakeHma) -> None:
    fake_hma.fail, fake_hma.fail_next = "http_500", 1
    async with make_matcher(fake_hma.url, cache_size=100) as matcher:
        failed = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
        answered = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
    assert [f.kind for f in failed.failures] == ["http_5xx"]
    assert answered.failures == () and len(answered.matches) == 1


async def test_cached_answers_are_served_while_the_breaker_is_open(fake_hma: FakeHma) -> None:
    async with make_matcher(fake_hma.url, cache_size=100) as matcher:
        await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
        await fake_hma.stop()
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
    assert result.failures == () and len(result.matches) == 1


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = AnswerCache(2, 60.0, clock=Clock())
    keys = [AnswerCache.key(SignalType.PDQ, f"{n:064x}", None) for n in range(3)]
    hit = (Hit("BANK", 1, 3),)
    cache.put(keys[0], hit)
    cache.put(keys[1], ())
    assert cache.get(keys[0]) == hit  # now the most recently used
    cache.put(keys[2], hit)
    assert len(cache) == 2 and cache.get(keys[1]) is None and cache.get(keys[0]) == hit


def test_a_zero_size_cache_keeps_nothing() -> None:
    cache = AnswerCache(0, 60.0)
    key = AnswerCache.key(SignalType.PDQ, "0" * 64, ("A",))
    cache.put(key, ())
    assert cache.get(key) is None and len(cache) == 0
