"""The compiled plan: what each upload needs under a policy — hashes to compute, what each source is
asked (signal types, banks, distances) — as tables, and compiled once per load by PolicyHolder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gate.hashing.options import HashOptions
from gate.policy.model import Hashing, Rule
from gate.policy.plan import Lookup, compile_plan
from gate.policy.reload import PolicyHolder
from gate.signals import SignalType
from gate.types import Verdict
from tests.fakes.hma_support import hma_rule, make_policy

PDQ, VMD5, PHASH, DHASH = SignalType.PDQ, SignalType.VIDEO_MD5, SignalType.PHASH, SignalType.DHASH
EXACT = (SignalType.MD5, SignalType.SHA1, SignalType.SHA256, SignalType.CID)
R = Verdict.REJECT


def local(
    name: str,
    distance: int,
    signals: list[SignalType] | None = None,
    *,
    shadow: bool = False,
    banks: list[str] | None = None,
) -> Rule:
    return hma_rule(name, R, distance, banks=banks, signals=signals, shadow=shadow, sources=["local"])


@pytest.mark.parametrize(
    ("rules", "hma_banks", "banks", "signals"),
    [
        ([hma_rule("r", R, 8)], None, None, (PDQ, VMD5)),
        ([hma_rule("r", R, 8, banks=["B", "A"])], None, ("A", "B"), (PDQ, VMD5)),
        ([hma_rule("r", R, 8, banks=["A"])], ["Z"], ("Z",), (PDQ, VMD5)),
        ([hma_rule("r", R, 8, banks=["A"]), hma_rule("s", R, 8)], None, None, (PDQ, VMD5)),
        ([hma_rule("r", R, 8, banks=["A"], shadow=True)], None, ("A",), (PDQ, VMD5)),
        ([hma_rule("r", R, 8, signals=[VMD5, PDQ])], None, None, (PDQ, VMD5)),
        ([hma_rule("r", R, 8, signals=[PDQ])], None, None, (PDQ,)),
        ([hma_rule("r", R, 8, signals=[SignalType.SHA256], sources=["hma", "local"])], None, None, ()),
        ([local("l", 8, banks=["L"])], None, (), ()),
        ([local("l", 8)], ["H"], ("H",), (PDQ, VMD5)),
    ],
)
def test_what_hma_is_asked(
    rules: list[Rule], hma_banks: list[str] | None, banks: tuple[str, ...] | None, signals: tuple[SignalType]
) -> None:
    plan = compile_plan(make_policy(rules, hma_banks=hma_banks))
    assert (plan.hma.banks, plan.hma.signals) == (banks, signals)


@pytest.mark.parametrize(
    ("rules", "lookup"),
    [
        ([], Lookup(EXACT)),
        ([hma_rule("h", R, 31)], Lookup(EXACT)),  # HMA's distance is not a local search radius
        ([local("l", 31)], Lookup((PDQ, *EXACT, PHASH, DHASH), None, {PDQ: 31, PHASH: 31, DHASH: 31})),
        ([local("l", 12, [PDQ]), local("w", 70, [PDQ], shadow=True)], Lookup((PDQ, *EXACT), None, {PDQ: 70})),
        ([local("l", 9, [PHASH, SignalType.MD5])], Lookup((*EXACT, PHASH), None, {PHASH: 9})),
        ([local("l", 5, [DHASH]), hma_rule("any", R, 20, sources=["hma", "local"])],
         Lookup((PDQ, *EXACT, PHASH, DHASH), None, {PDQ: 20, PHASH: 20, DHASH: 20})),
    ],
)  # fmt: skip
def test_what_the_local_banks_are_asked(rules: list[Rule], lookup: Lookup) -> None:
    assert compile_plan(make_policy(rules)).local == lookup


def test_what_is_hashed() -> None:
    policy = replace(
        make_policy([local("p", 8, [PHASH])]),
        hashing=Hashing(dihedral=True, min_pdq_quality=30, max_frames=7, max_total_pixels=1000),
    )
    assert compile_plan(policy, max_image_pixels=500).hashing == HashOptions(
        dihedral=True,
        min_pdq_quality=30,
        phash=True,
        dhash=False,
        max_image_pixels=500,
        max_frames=7,
        max_total_pixels=1000,
    )
    # pHash and dHash only when a rule names them: a rule for every signal type means PDQ.
    assert compile_plan(make_policy([local("any", 8)])).hashing == HashOptions()


POLICY = """
on_unhashable = "quarantine"
on_unscannable = "forward"
on_matcher_error = "forward"
on_log_failure = "forward"
[[rules]]
name = "near"
source = "local"
signal_types = ["pdq"]
max_distance = {distance}
action = "reject"
"""


async def test_the_holder_compiles_each_policy_it_installs_and_keeps_the_last_good_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY.format(distance=10))
    holder = PolicyHolder(path, dict, max_image_pixels=1234)
    await holder.load_initial()
    first = holder.plan
    assert first.policy is holder.current
    assert (first.local.max_distance, first.hashing.max_image_pixels) == ({PDQ: 10}, 1234)
    assert holder.plan is first  # compiled once, not per use
    path.write_text(POLICY.format(distance=20))
    assert await holder.reload()
    assert holder.plan.local.max_distance == {PDQ: 20} and holder.plan.policy is holder.current
    path.write_text(POLICY.format(distance=999))
    assert not await holder.reload()
    assert holder.plan.local.max_distance == {PDQ: 20}
