"""HmaMatcher against the fake HMA: what is asked, how answers become matches."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gate.policy.plan import compile_plan
from gate.signals import SignalType
from gate.types import Match, PdqHash, Variant, Verdict
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import (
    BASE_PDQ,
    OTHER_PDQ,
    flip,
    hma_rule,
    image_hashes,
    make_matcher,
    make_policy,
    video_hashes,
)

ANY_HMA = make_policy([hma_rule("any", Verdict.REJECT, 31)])


@pytest.mark.parametrize(("bits", "found"), [(0, True), (1, True), (15, True), (31, True), (32, False)])
async def test_distances_are_parsed_and_hma_matches_up_to_31_bits(
    fake_hma: FakeHma, bits: int, found: bool
) -> None:
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(image_hashes(flip(BASE_PDQ, bits)), compile_plan(ANY_HMA))
    assert result.failures == ()
    expected = Match(
        "hma",
        "BANK_A",
        SignalType.PDQ,
        bits,
        "1",
        query_hash=flip(BASE_PDQ, bits),
        frame=0,
        variant=Variant.STORED,
    )
    assert result.matches == ((expected,) if found else ())


async def test_video_md5_is_an_exact_match_with_no_distance(fake_hma: FakeHma) -> None:
    body = b"\x00\x00\x00\x18ftypmp42 a tiny video"
    hashes = video_hashes(body)
    fake_hma.add_signal("BANK_B", "video_md5", hashes.md5)
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(hashes, compile_plan(ANY_HMA))
    assert result.matches == (Match("hma", "BANK_B", SignalType.VIDEO_MD5, None, "3", query_hash=hashes.md5),)
    assert fake_hma.lookups[-1]["signal_type"] == "video_md5"


async def test_images_are_not_looked_up_as_video_md5(fake_hma: FakeHma) -> None:
    async with make_matcher(fake_hma.url) as matcher:
        await matcher.match(image_hashes(BASE_PDQ), compile_plan(ANY_HMA))
    assert [q["signal_type"] for q in fake_hma.lookups] == ["pdq"]


async def test_every_dihedral_hash_is_asked_once_lowercase_with_the_upload_sha256_as_seed(
    fake_hma: FakeHma,
) -> None:
    rotated = [flip(OTHER_PDQ, n) for n in range(1, 7)]
    hashes = image_hashes(BASE_PDQ.upper(), *rotated, rotated[0])  # a symmetric image repeats a hash
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(
            hashes, compile_plan(make_policy([hma_rule("r", Verdict.REJECT, 31)], dihedral=True))
        )
    asked = sorted(q["signal"] for q in fake_hma.lookups)
    assert asked == sorted([BASE_PDQ, *rotated])
    assert {q["seed"] for q in fake_hma.lookups} == {hashes.sha256}
    assert {(m.bank, m.distance) for m in result.matches} == {("BANK_A", 0)} | {
        ("BANK_B", n) for n in range(1, 7)
    }


async def test_a_later_frame_is_looked_up_and_its_match_says_which_frame(fake_hma: FakeHma) -> None:
    hashes = replace(
        image_hashes(OTHER_PDQ),
        pdq=(PdqHash(OTHER_PDQ, 90), PdqHash(flip(BASE_PDQ, 5), 90, frame=7)),
    )
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(hashes, compile_plan(ANY_HMA))
    assert sorted(q["signal"] for q in fake_hma.lookups) == sorted([OTHER_PDQ, flip(BASE_PDQ, 5)])
    assert [(m.distance, m.frame, m.variant) for m in result.matches if m.bank == "BANK_A"] == [
        (5, 7, Variant.STORED)
    ]


async def test_policy_hma_banks_are_sent_and_filter_the_answer(fake_hma: FakeHma) -> None:
    policy = make_policy([hma_rule("r", Verdict.REJECT, 31)], hma_banks=["BANK_B"])
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(image_hashes(BASE_PDQ, OTHER_PDQ), compile_plan(policy))
    assert {q["banks"] for q in fake_hma.lookups} == {"BANK_B"}
    assert [m.bank for m in result.matches] == ["BANK_B"]


async def test_without_hma_banks_the_banks_rules_name_are_sent(fake_hma: FakeHma) -> None:
    policy = make_policy(
        [
            hma_rule("a", Verdict.REJECT, 10, banks=["BANK_A"]),
            hma_rule("local", Verdict.REJECT, 10, banks=["BANK_B"], sources=["local"]),
        ]
    )
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(image_hashes(BASE_PDQ, OTHER_PDQ), compile_plan(policy))
    assert {q["banks"] for q in fake_hma.lookups} == {"BANK_A"}
    assert [m.bank for m in result.matches] == ["BANK_A"]


async def test_a_rule_naming_no_bank_asks_every_bank(fake_hma: FakeHma) -> None:
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(image_hashes(BASE_PDQ, OTHER_PDQ), compile_plan(ANY_HMA))
    assert all("banks" not in q for q in fake_hma.lookups)
    assert sorted(m.bank for m in result.matches) == ["BANK_A", "BANK_B"]


async def test_an_unknown_bank_silently_matches_nothing(fake_hma: FakeHma) -> None:
    policy = make_policy([hma_rule("r", Verdict.REJECT, 31, banks=["NO_SUCH_BANK"])])
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(policy))
    assert result.matches == () and result.failures == ()  # why start-up validates names: see test_hma_checks


async def test_no_rule_relying_on_hma_means_no_lookup(fake_hma: FakeHma) -> None:
    policy = make_policy([hma_rule("local", Verdict.REJECT, 31, sources=["local"])])
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(image_hashes(BASE_PDQ), compile_plan(policy))
    assert result.matches == () and fake_hma.lookups == []


async def test_rules_for_pdq_only_skip_the_video_lookup(fake_hma: FakeHma) -> None:
    policy = make_policy([hma_rule("r", Verdict.REJECT, 31, signals=[SignalType.PDQ])])
    async with make_matcher(fake_hma.url) as matcher:
        result = await matcher.match(video_hashes(b"some video"), compile_plan(policy))
    assert result.matches == () and fake_hma.lookups == []


async def test_a_bank_below_ratio_one_is_skipped_at_random_but_deterministically_per_seed(
    fake_hma: FakeHma,
) -> None:
    fake_hma.banks["BANK_A"].ratio = 0.5
    outcomes: dict[bytes, bool] = {}
    async with make_matcher(fake_hma.url) as matcher:
        for n in range(12):
            body = f"upload {n}".encode()
            first = await matcher.match(image_hashes(BASE_PDQ, body=body), compile_plan(ANY_HMA))
            again = await matcher.match(image_hashes(BASE_PDQ, body=body), compile_plan(ANY_HMA))
            assert first == again  # same seed (the upload's SHA-256), same coinflip
            outcomes[body] = bool(first.matches)
    assert set(outcomes.values()) == {True, False}
