"""HMA answers judged by the real policy: per-bank thresholds, on_matcher_error, bank checks on load/reload."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gate.matching.breaker import CircuitBreaker
from gate.matching.hma_banks import HmaBankCheck
from gate.matching.hma_client import HmaClient
from gate.policy.evaluate import evaluate
from gate.policy.load import PolicyError
from gate.policy.plan import compile_plan
from gate.policy.reload import PolicyHolder
from gate.signals import SignalType
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

# HMA matches anything within 31 bits; the gate is stricter, per bank.
THRESHOLDS = make_policy(
    [
        hma_rule("a-close", Verdict.REJECT, 8, banks=["BANK_A"]),
        hma_rule("a-near", Verdict.QUARANTINE, 16, banks=["BANK_A"]),
        hma_rule("b-exactish", Verdict.REJECT, 4, banks=["BANK_B"], signals=[SignalType.PDQ]),
    ]
)


@pytest.mark.parametrize(
    ("base", "bits", "verdict", "rule"),
    [
        (BASE_PDQ, 0, Verdict.REJECT, "a-close"),
        (BASE_PDQ, 8, Verdict.REJECT, "a-close"),
        (BASE_PDQ, 9, Verdict.QUARANTINE, "a-near"),
        (BASE_PDQ, 16, Verdict.QUARANTINE, "a-near"),
        (BASE_PDQ, 17, Verdict.FORWARD, "no_match"),
        (BASE_PDQ, 31, Verdict.FORWARD, "no_match"),
        (OTHER_PDQ, 4, Verdict.REJECT, "b-exactish"),
        (OTHER_PDQ, 5, Verdict.FORWARD, "no_match"),
    ],
)
async def test_each_rule_applies_its_own_distance_and_farther_matches_are_recorded_only(
    fake_hma: FakeHma, base: str, bits: int, verdict: Verdict, rule: str
) -> None:
    hashes = image_hashes(flip(base, bits))
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(hashes, compile_plan(THRESHOLDS))
    decision = evaluate(THRESHOLDS, hashes, result)
    assert (decision.verdict, decision.rule) == (verdict, rule)
    assert [(m.source, m.distance) for m in decision.all_matches] == [("hma", bits)]
    assert decision.matches == (decision.all_matches if verdict is not Verdict.FORWARD else ())
    assert decision.full_scan


async def test_a_shadow_rule_records_what_a_looser_threshold_would_do(fake_hma: FakeHma) -> None:
    policy = make_policy(
        [hma_rule("strict", Verdict.REJECT, 4), hma_rule("try-looser", Verdict.REJECT, 20, shadow=True)]
    )
    hashes = image_hashes(flip(BASE_PDQ, 12))
    async with make_matcher(fake_hma.url) as matcher:
        decision = evaluate(policy, hashes, await matcher.match(hashes, compile_plan(policy)))
    assert decision.verdict is Verdict.FORWARD and decision.shadow_only
    assert decision.shadow is not None and decision.shadow.rule == "try-looser"


FAILURES = ["refused", "timeout", "http_5xx", "not_ready", "malformed", "http_4xx", "breaker_open"]


async def provoke(
    fake: FakeHma, kind: str, policy_choice: Verdict
) -> tuple[Verdict, str, bool, tuple[str, ...]]:
    """Make HMA fail as ``kind`` for one upload; return what the policy decided."""
    policy = make_policy([hma_rule("any", Verdict.REJECT, 31)], on_matcher_error=policy_choice)
    hashes = image_hashes(BASE_PDQ)
    switch = {
        "http_5xx": "http_500",
        "not_ready": "not_ready",
        "malformed": "malformed",
        "http_4xx": "http_400",
    }
    breaker = CircuitBreaker(1, 60.0)
    # Only the timeout case gets short limits: under load, a slow but well-formed failure answer must
    # still be classified as what it is, not as a timeout.
    short = kind == "timeout"
    deadline, timeout = (0.3, 0.2) if short else (10.0, 8.0)
    async with make_matcher(fake.url, deadline=deadline, timeout=timeout, breaker=breaker) as matcher:
        if kind == "refused":
            await fake.stop()
        elif kind == "timeout":
            fake.fail = "hang"
        elif kind == "breaker_open":
            fake.fail = "http_500"
            await matcher.match(image_hashes(OTHER_PDQ), compile_plan(policy))  # opens the breaker
            fake.fail = None
        else:
            fake.fail = switch[kind]
        result = await matcher.match(hashes, compile_plan(policy))
    decision = evaluate(policy, hashes, result)
    return decision.verdict, decision.rule, decision.full_scan, decision.notes


@pytest.mark.parametrize("choice", list(Verdict))
@pytest.mark.parametrize("kind", FAILURES)
async def test_every_failure_mode_is_decided_by_on_matcher_error(
    fake_hma: FakeHma, kind: str, choice: Verdict
) -> None:
    verdict, rule, full_scan, notes = await provoke(fake_hma, kind, choice)
    assert (verdict, rule, full_scan) == (choice, "on_matcher_error", False)
    assert notes == (f"matcher_error: hma {kind}",)


async def test_a_match_that_did_come_back_still_acts_when_another_lookup_failed(fake_hma: FakeHma) -> None:
    policy = make_policy([hma_rule("any", Verdict.REJECT, 31)], on_matcher_error=Verdict.FORWARD)
    fake_hma.fail, fake_hma.fail_next, fake_hma.serialise = "http_500", 1, True
    hashes = image_hashes(flip(OTHER_PDQ, 40), BASE_PDQ)  # the failing lookup is the non-matching one
    async with make_matcher(fake_hma.url) as matcher:
        decision = evaluate(policy, hashes, await matcher.match(hashes, compile_plan(policy)))
    assert (decision.verdict, decision.rule, decision.full_scan) == (Verdict.REJECT, "any", False)


POLICY = """
on_unhashable = "reject"
on_unscannable = "forward"
on_matcher_error = "quarantine"
on_log_failure = "forward"
hma_banks = {banks}

[[rules]]
name = "hma-pdq"
source = "hma"
signal_types = ["pdq"]
max_distance = 16
action = "reject"
"""


async def test_a_policy_naming_a_bank_hma_lacks_stops_start_up(fake_hma: FakeHma, tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY.format(banks='["BANK_A", "BANK_C"]'))
    client = HmaClient(fake_hma.url)
    holder = PolicyHolder(path, known_banks=dict, validators=[HmaBankCheck(client)])
    with pytest.raises(PolicyError, match="hma_banks names HMA bank 'BANK_C', which HMA does not have"):
        await holder.load_initial()
    await client.aclose()


async def test_a_reload_naming_a_bank_hma_lacks_keeps_the_last_good_policy(
    fake_hma: FakeHma, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY.format(banks='["BANK_A"]'))
    client = HmaClient(fake_hma.url)
    holder = PolicyHolder(path, known_banks=dict)
    holder.add_validator(HmaBankCheck(client))
    good = await holder.load_initial()
    path.write_text(POLICY.format(banks='["BANK_A", "GONE"]'))
    with caplog.at_level(logging.ERROR):
        assert await holder.reload() is False
    assert holder.current == good
    assert "'GONE', which HMA does not have" in caplog.text
    fake_hma.add_bank("GONE")  # the operator creates it in HMA: the same file is now accepted
    assert await holder.reload() is True
    assert holder.current.hma_banks == frozenset({"BANK_A", "GONE"})
    await client.aclose()
