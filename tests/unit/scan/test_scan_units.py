"""The scan's pure parts: the policy's [scan] table, the pace, what names may become blob-store paths,
and which decisions a scan acts on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gate.blob_fetch import BlobUnavailable, check_names, verified
from gate.policy.load import PolicyError, parse_policy
from gate.policy.model import Policy, Scan
from gate.record import DecisionRecord, new_decision_id
from gate.scan.act import ScanActor, wanted
from gate.scan.pace import Pace
from gate.scan.scanner import repo_uploader
from gate.types import Decision, DecisionSource, Hashes, ScanAction, Verdict
from tests.support.cids import cid_of

HEAD = 'on_unhashable = "reject"\non_unscannable = "forward"\non_matcher_error = "quarantine"\non_log_failure = "forward"\n'
CID = cid_of(b"x")


def parse(text: str) -> Policy:
    return parse_policy((HEAD + text).encode(), source="t.toml", known_banks={"local": frozenset()})


def test_scan_table_parsed() -> None:
    policy = parse('[scan]\nreject = ["takedown", "withhold"]\nquarantine = []\nshadow = true\n')
    assert policy.scan == Scan(
        frozenset({ScanAction.TAKEDOWN, ScanAction.WITHHOLD}), frozenset(), shadow=True
    )
    assert parse("").scan is None


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("reject = []\n", "scan.quarantine: required"),
        ('reject = ["delete"]\nquarantine = []\n', "scan.reject: 'delete' is not one of"),
        ('reject = "withhold"\nquarantine = []\n', "scan.reject: expected a list"),
        ("reject = []\nquarantine = []\nshadow = 1\n", "scan.shadow: 1 is not true or false"),
        ("reject = []\nquarantine = []\naccount = true\n", "scan.account: unknown key"),
    ],
)
def test_scan_table_mistakes_name_the_key(table: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse("[scan]\n" + table)
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_a_scan_that_reviews_needs_an_evidence_key() -> None:
    forward_only = 'on_unhashable = "forward"\non_unscannable = "forward"\non_matcher_error = "forward"\non_log_failure = "forward"\n'
    rule = '[[rules]]\nname = "r"\nsource = "local"\nsignal_types = ["sha256"]\naction = "reject"\n'
    make: Callable[[str], Policy] = lambda scan: parse_policy(  # noqa: E731
        (forward_only + rule + scan).encode(), source="t", known_banks={"local": frozenset()}
    )
    assert not make("").keeps_evidence
    assert make('[scan]\nreject = ["review"]\nquarantine = []\n').keeps_evidence
    assert not make('[scan]\nreject = ["review"]\nquarantine = []\nshadow = true\n').keeps_evidence
    assert not make(
        '[scan]\nreject = ["withhold"]\nquarantine = ["review"]\n'
    ).keeps_evidence  # never quarantines


def test_pace_keeps_the_rate_with_one_second_of_burst() -> None:
    now = [0.0]
    pace = Pace(2.0, clock=lambda: now[0])
    assert [pace.delay(1) for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    now[0] = 10.0  # a quiet spell earns at most the burst
    assert [pace.delay(1) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert Pace(0).delay(10**9) == 0.0  # 0: no limit
    bytes_pace = Pace(1000.0, clock=lambda: now[0])
    assert bytes_pace.delay(5000) == 4.0  # a large blob is paid for by the pause after it


@pytest.mark.parametrize(
    "did", ["did:plc:../../etc", "did:plc:a/b", "../x", "did:web:", "x" * 10, "did:plc:ab\x00"]
)
def test_names_that_could_leave_the_blob_store_are_refused(did: str) -> None:
    with pytest.raises(BlobUnavailable) as info:
        check_names(did, CID)
    assert info.value.kind == "invalid"


@pytest.mark.parametrize("cid", ["../" + CID, CID.upper(), CID + "/", "bafy", "Qm" + "a" * 44])
def test_cids_other_than_the_pds_file_names_are_refused(cid: str) -> None:
    with pytest.raises(BlobUnavailable):
        check_names("did:plc:abcdefghijklmnopqrstuvwx", cid)


def test_bytes_must_match_their_cid() -> None:
    assert verified(CID, b"x") == b"x"
    with pytest.raises(BlobUnavailable) as info:
        verified(CID, b"y")
    assert info.value.kind == "corrupt"


def _record(verdict: Verdict, reason: str) -> DecisionRecord:
    hashes = Hashes("0" * 64, "0" * 32, "0" * 40, CID, 1, "image/png")
    decision = Decision(verdict, "r" if reason == "match" else "on_unhashable", reason, (), "v")
    return DecisionRecord(
        new_decision_id(), DecisionRecord.now(), DecisionSource.BACKFILL, None, repo_uploader("did:plc:x"),
        None, hashes, decision, verdict,
    )  # fmt: skip


def test_only_a_rule_acts_and_in_order() -> None:
    policy = parse('[scan]\nreject = ["takedown", "review", "withhold"]\nquarantine = ["withhold"]\n')
    order = (ScanAction.WITHHOLD, ScanAction.REVIEW, ScanAction.TAKEDOWN)
    assert wanted(policy, _record(Verdict.REJECT, "match")) == order
    assert wanted(policy, _record(Verdict.QUARANTINE, "match")) == (ScanAction.WITHHOLD,)
    assert wanted(policy, _record(Verdict.REJECT, "unhashable")) == ()  # a built-in choice: recorded only
    assert wanted(policy, _record(Verdict.FORWARD, "no_match")) == ()
    assert wanted(parse(""), _record(Verdict.REJECT, "match")) == ()


def test_shadow_and_missing_parts_are_reported_not_raised() -> None:
    async def body() -> bytes:
        return b"x"

    actor = ScanActor(None, None, "gate:scan")
    record = _record(Verdict.REJECT, "match")
    shadow = parse('[scan]\nreject = ["withhold", "takedown"]\nquarantine = []\nshadow = true\n')
    taken = asyncio.run(actor.act(shadow, record, "did:plc:x", CID, body))
    assert [(a.action, a.result) for a in taken] == [
        (ScanAction.WITHHOLD, "shadow"),
        (ScanAction.TAKEDOWN, "shadow"),
    ]
    live = parse('[scan]\nreject = ["withhold", "review", "takedown"]\nquarantine = []\n')
    taken = asyncio.run(actor.act(live, record, "did:plc:x", CID, body))
    assert [(a.action, a.result) for a in taken] == [
        (ScanAction.WITHHOLD, "done"),
        (ScanAction.REVIEW, "failed"),
        (ScanAction.TAKEDOWN, "refused"),
    ]
