"""``evaluate`` as a table: inputs (policy, hashes, matches) → verdict, rule, reason, driving matches."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gate.policy.evaluate import evaluate
from gate.policy.load import DEFAULT_QUARANTINE, DEFAULT_REJECT
from gate.policy.model import Hashing, Policy, Rule
from gate.signals import SignalType
from gate.types import Hashes, Match, MatcherFailure, MatchResult, PdqHash, Unhashable, Verdict

F, Q, R = Verdict.FORWARD, Verdict.QUARANTINE, Verdict.REJECT
PDQ = SignalType.PDQ
SHA = SignalType.SHA256
LOCAL = frozenset({"local"})


def r(
    name: str,
    action: Verdict,
    *,
    signals: set[SignalType] | None = None,
    dist: int = 31,
    sources: frozenset[str] = LOCAL,
    banks: frozenset[str] | None = None,
    shadow: bool = False,
) -> Rule:
    return Rule(
        name=name,
        action=action,
        sources=sources,
        banks=banks,
        signal_types=frozenset(signals) if signals is not None else None,
        max_distance=dist,
        shadow=shadow,
    )


BASE = Policy(
    version="v1",
    rules=(
        r("exact", R, signals={SHA, SignalType.MD5, SignalType.CID}, banks=frozenset({"block"})),
        r("near", R, signals={PDQ}, dist=31, banks=frozenset({"block"})),
        r("review", Q, signals={PDQ}, dist=60, banks=frozenset({"review"})),
        r("memes", F, signals={PDQ}, dist=10, banks=frozenset({"memes"})),
        r("loose", Q, signals={PDQ}, dist=80, banks=frozenset({"block"}), shadow=True),
        r("hma", R, signals={PDQ}, dist=20, sources=frozenset({"hma"})),
    ),
    on_unhashable=Q,
    on_unscannable=F,
    on_matcher_error=Q,
    on_log_failure=F,
    on_low_quality=F,
    unscannable_by_type=(("video/*", R),),
    allowlist_banks=frozenset({"good"}),
    reject_response=DEFAULT_REJECT,
    quarantine_response=DEFAULT_QUARANTINE,
    hashing=Hashing(),
)

IMAGE = Hashes(
    sha256="a" * 64,
    md5="b" * 32,
    sha1="c" * 40,
    cid="bafkreia",
    size=10,
    media_type="image/jpeg",
    pdq=(PdqHash("d" * 64, 100),),
)
VIDEO = replace(IMAGE, media_type="video/mp4", pdq=())
UNKNOWN = replace(IMAGE, media_type="application/octet-stream", pdq=())
CORRUPT = replace(IMAGE, pdq=(), unhashable=Unhashable.CORRUPT)
FLAT = replace(IMAGE, pdq=(), unhashable=Unhashable.LOW_QUALITY)


def m(bank: str, signal: SignalType = PDQ, dist: int | None = 0, source: str = "local") -> Match:
    return Match(source, bank, signal, None if signal.exact else dist, content_id=f"{bank}.csv:{dist}")


FAIL = MatcherFailure("hma", "timeout", "no answer in 2s")

# (id, hashes, matches, failures, verdict, rule, reason, driving matches, full_scan)
CASES = [
    ("nothing", IMAGE, [], [], F, "no_match", "no_match", [], True),
    ("exact block", IMAGE, [m("block", SHA)], [], R, "exact", "match", [m("block", SHA)], True),
    ("pdq at threshold", IMAGE, [m("block", dist=31)], [], R, "near", "match", [m("block", dist=31)], True),
    ("pdq beyond threshold", IMAGE, [m("block", dist=32)], [], F, "no_match", "no_match", [], True),
    ("other bank not selected", IMAGE, [m("elsewhere", dist=0)], [], F, "no_match", "no_match", [], True),
    (
        "quarantine rule",
        IMAGE,
        [m("review", dist=50)],
        [],
        Q,
        "review",
        "match",
        [m("review", dist=50)],
        True,
    ),
    (
        "reject beats quarantine",
        IMAGE,
        [m("review", dist=1), m("block", dist=20)],
        [],
        R,
        "near",
        "match",
        [m("block", dist=20)],
        True,
    ),
    (
        "rule carries every match it selects",
        IMAGE,
        [m("block", dist=3), m("block", dist=30), m("block", dist=40)],
        [],
        R,
        "near",
        "match",
        [m("block", dist=3), m("block", dist=30)],
        True,
    ),
    ("forward rule fires", IMAGE, [m("memes", dist=5)], [], F, "memes", "match", [m("memes", dist=5)], True),
    (
        "allowlist exact short-circuits a reject",
        IMAGE,
        [m("block", SHA), m("good", SHA)],
        [],
        F,
        "allowlist",
        "allowlist",
        [m("good", SHA)],
        True,
    ),
    (
        "allowlist beats a matcher failure",
        IMAGE,
        [m("good", SignalType.MD5)],
        [FAIL],
        F,
        "allowlist",
        "allowlist",
        [m("good", SignalType.MD5)],
        True,
    ),
    (
        "perceptual allowlist hit is ignored",
        IMAGE,
        [m("good", dist=0), m("block", dist=10)],
        [],
        R,
        "near",
        "match",
        [m("block", dist=10)],
        True,
    ),
    (
        "hma allowlist-named bank is not an allowlist",
        IMAGE,
        [m("good", dist=3, source="hma")],
        [],
        R,
        "hma",
        "match",
        [m("good", dist=3, source="hma")],
        True,
    ),
    ("matcher error", IMAGE, [], [FAIL], Q, "on_matcher_error", "matcher_error", [], False),
    (
        "a reject rule beats matcher error",
        IMAGE,
        [m("block", SHA)],
        [FAIL],
        R,
        "exact",
        "match",
        [m("block", SHA)],
        False,
    ),
    (
        "a quarantine rule beats quarantine built-in on tie",
        IMAGE,
        [m("review", dist=40)],
        [FAIL],
        Q,
        "review",
        "match",
        [m("review", dist=40)],
        False,
    ),
    ("unhashable image", CORRUPT, [], [], Q, "on_unhashable", "unhashable", [], False),
    ("low quality override", FLAT, [], [], F, "on_low_quality", "unhashable", [], False),
    (
        "exact rule on unhashable",
        CORRUPT,
        [m("block", SHA)],
        [],
        R,
        "exact",
        "match",
        [m("block", SHA)],
        False,
    ),
    ("video by type", VIDEO, [], [], R, "on_unscannable_by_type:video/*", "unscannable", [], False),
    ("unknown bytes", UNKNOWN, [], [], F, "on_unscannable", "unscannable", [], False),
    (
        "exact rule on unscannable",
        UNKNOWN,
        [m("block", SignalType.CID)],
        [],
        R,
        "exact",
        "match",
        [m("block", SignalType.CID)],
        False,
    ),
    (
        "shadow rule alone changes nothing",
        IMAGE,
        [m("block", dist=70)],
        [],
        F,
        "no_match",
        "no_match",
        [],
        True,
    ),
]


@pytest.mark.parametrize(
    ("hashes", "matches", "failures", "verdict", "rule", "reason", "driving", "full_scan"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_evaluate(
    hashes: Hashes,
    matches: list[Match],
    failures: list[MatcherFailure],
    verdict: Verdict,
    rule: str,
    reason: str,
    driving: list[Match],
    full_scan: bool,
) -> None:
    decision = evaluate(BASE, hashes, MatchResult(tuple(matches), tuple(failures)))
    assert (decision.verdict, decision.rule, decision.reason) == (verdict, rule, reason)
    assert list(decision.matches) == driving
    assert decision.all_matches == tuple(matches)
    assert decision.full_scan is full_scan
    assert decision.policy_version == "v1"


def test_low_quality_falls_back_to_on_unhashable() -> None:
    policy = replace(BASE, on_low_quality=None)
    decision = evaluate(policy, FLAT, MatchResult())
    assert (decision.verdict, decision.rule) == (Q, "on_unhashable")


def test_non_image_declared_png_is_unscannable() -> None:
    """The hasher sniffs "text/plain" from bytes a client called image/png: no PDQ, so unscannable."""
    text = replace(IMAGE, media_type="text/plain", pdq=())
    decision = evaluate(replace(BASE, on_unscannable=R), text, MatchResult())
    assert (decision.verdict, decision.rule, decision.reason) == (R, "on_unscannable", "unscannable")


def test_earlier_rule_wins_a_tie() -> None:
    policy = replace(BASE, rules=(r("first", R, dist=31), r("second", R, dist=31)))
    decision = evaluate(policy, IMAGE, MatchResult((m("x", dist=2),)))
    assert decision.rule == "first"


def test_builtin_order_on_tie() -> None:
    """Matcher error and unscannable both quarantine: the decision names the first built-in."""
    policy = replace(BASE, on_unscannable=Q, unscannable_by_type=())
    decision = evaluate(policy, VIDEO, MatchResult(failures=(FAIL,)))
    assert (decision.verdict, decision.rule) == (Q, "on_matcher_error")
    assert decision.notes == ("matcher_error: hma timeout", "unscannable: video/mp4")


# Shadow rules: (id, matches, the active verdict, the shadow outcome or None)
SHADOW_CASES = [
    ("no shadow hit", [m("block", dist=90)], F, None),
    ("shadow fires beyond the active rule", [m("block", dist=70)], F, (Q, "loose", [m("block", dist=70)])),
    ("both fire", [m("block", dist=10)], R, (Q, "loose", [m("block", dist=10)])),
]


@pytest.mark.parametrize(
    ("matches", "verdict", "shadow"), [c[1:] for c in SHADOW_CASES], ids=[c[0] for c in SHADOW_CASES]
)
def test_shadow(
    matches: list[Match], verdict: Verdict, shadow: tuple[Verdict, str, list[Match]] | None
) -> None:
    decision = evaluate(BASE, IMAGE, MatchResult(tuple(matches)))
    assert decision.verdict is verdict
    if shadow is None:
        assert decision.shadow is None
    else:
        assert decision.shadow is not None
        assert (decision.shadow.verdict, decision.shadow.rule, list(decision.shadow.matches)) == shadow


def test_strongest_shadow_rule_wins() -> None:
    policy = replace(
        BASE,
        rules=(
            r("s-q", Q, dist=50, shadow=True),
            r("s-r", R, dist=40, shadow=True),
            r("s-r2", R, shadow=True),
        ),
    )
    decision = evaluate(policy, IMAGE, MatchResult((m("x", dist=30),)))
    assert decision.verdict is F and decision.rule == "no_match"
    assert decision.shadow is not None and decision.shadow.rule == "s-r"
    assert decision.shadow_only


def test_allowlist_short_circuits_shadow_too() -> None:
    decision = evaluate(BASE, IMAGE, MatchResult((m("good", SHA), m("block", dist=70))))
    assert decision.rule == "allowlist" and decision.shadow is None
