"""Which banks, signal types and hashes the HMA matcher asks for, per policy (a table)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gate.matching.hma_plan import hma_banks_for, hma_signals_for, queries_for
from gate.policy.model import Rule
from gate.signals import SignalType
from gate.types import PdqHash, Variant, Verdict
from tests.fakes.hma_support import (
    BASE_PDQ,
    OTHER_PDQ,
    flip,
    hma_rule,
    image_hashes,
    make_policy,
    video_hashes,
)

PDQ, VMD5 = SignalType.PDQ, SignalType.VIDEO_MD5


@pytest.mark.parametrize(
    ("rules", "hma_banks", "banks", "signals"),
    [
        ([hma_rule("r", Verdict.REJECT, 8)], None, None, {PDQ, VMD5}),
        ([hma_rule("r", Verdict.REJECT, 8, banks=["B", "A"])], None, ("A", "B"), {PDQ, VMD5}),
        ([hma_rule("r", Verdict.REJECT, 8, banks=["A"])], ["Z"], ("Z",), {PDQ, VMD5}),
        (
            [hma_rule("r", Verdict.REJECT, 8, banks=["A"]), hma_rule("s", Verdict.REJECT, 8)],
            None,
            None,
            {PDQ, VMD5},
        ),
        ([hma_rule("r", Verdict.REJECT, 8, banks=["A"], shadow=True)], None, ("A",), {PDQ, VMD5}),
        ([hma_rule("r", Verdict.REJECT, 8, signals=[PDQ])], None, None, {PDQ}),
        (
            [hma_rule("r", Verdict.REJECT, 8, signals=[SignalType.SHA256], sources=["hma", "local"])],
            None,
            None,
            set(),
        ),
        ([hma_rule("local", Verdict.REJECT, 8, banks=["L"], sources=["local"])], None, (), set()),
        ([hma_rule("local", Verdict.REJECT, 8, sources=["local"])], ["H"], ("H",), {PDQ, VMD5}),
    ],
)
def test_banks_and_signals_from_the_policy(
    rules: list[Rule], hma_banks: list[str] | None, banks: tuple[str, ...] | None, signals: set[SignalType]
) -> None:
    policy = make_policy(rules, hma_banks=hma_banks)
    assert hma_banks_for(policy) == banks
    assert hma_signals_for(policy) == signals


def test_queries_lowercase_and_deduplicate_and_only_video_gets_video_md5() -> None:
    both = frozenset({PDQ, VMD5})
    assert queries_for(image_hashes(BASE_PDQ.upper(), BASE_PDQ), both) == [(PDQ, BASE_PDQ)]
    video = video_hashes(b"video bytes")
    assert queries_for(video, both) == [(VMD5, video.md5)]
    assert queries_for(video, frozenset({PDQ})) == []


def test_every_frame_and_orientation_is_asked_once_and_a_jpeg_that_is_also_video_gets_video_md5() -> None:
    both = frozenset({PDQ, VMD5})
    frames = replace(
        image_hashes(BASE_PDQ),
        pdq=(
            PdqHash(BASE_PDQ, 90),
            PdqHash(OTHER_PDQ, 90, frame=1),
            PdqHash(OTHER_PDQ.upper(), 90, frame=2),  # listed twice by hand: still asked once
            PdqHash(flip(BASE_PDQ, 3), 90, "rotate90", frame=0, variant=Variant.DISPLAYED),
        ),
    )
    assert queries_for(frames, both) == [(PDQ, BASE_PDQ), (PDQ, OTHER_PDQ), (PDQ, flip(BASE_PDQ, 3))]
    polyglot = replace(frames, media_type="image/jpeg", media_types=("image/jpeg", "video/mp4"))
    assert queries_for(polyglot, both)[-1] == (VMD5, polyglot.md5)
