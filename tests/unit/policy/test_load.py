"""The policy parser: the bundled file is valid; each kind of mistake is reported with its key path."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from gate.matching.bank_set import build_bank_set
from gate.policy.load import DEFAULT_QUARANTINE, DEFAULT_REJECT, PolicyError, load_policy, parse_policy
from gate.signals import SignalType
from gate.types import Verdict

ROOT = Path(__file__).resolve().parents[3]
REQUIRED = {
    "on_unhashable": '"reject"',
    "on_unscannable": '"forward"',
    "on_matcher_error": '"quarantine"',
    "on_log_failure": '"forward"',
}
KNOWN = {"local": frozenset({"blocklist", "allowlist", "extra"})}


def doc(body: str = "", *, drop: str | None = None, top: str = "") -> str:
    head = "".join(f"{k} = {v}\n" for k, v in REQUIRED.items() if k != drop)
    return head + top + "\n" + body


def parse(text: str, known: dict[str, frozenset[str]] | None = None) -> object:
    return parse_policy(text.encode(), source="test.toml", known_banks=KNOWN if known is None else known)


def problems_of(text: str, known: dict[str, frozenset[str]] | None = None) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse(text, known)
    return info.value.problems


PDQ_RULE = """
[[rules]]
name = "pdq"
source = "local"
signal_types = ["pdq"]
max_distance = 31
action = "reject"
"""


def rule(**fields: object) -> str:
    base: dict[str, object] = {"name": '"r"', "source": '"local"', "action": '"reject"'}
    base.update(fields)
    lines = "".join(f"{k} = {v}\n" for k, v in base.items() if v is not None)
    return "[[rules]]\n" + lines


INVALID = [
    # (id, file text, the expected problem: a substring of exactly one reported line)
    ("missing on_unhashable", doc(drop="on_unhashable"), "on_unhashable: required"),
    ("missing on_unscannable", doc(drop="on_unscannable"), "on_unscannable: required"),
    ("missing on_matcher_error", doc(drop="on_matcher_error"), "on_matcher_error: required"),
    ("missing on_log_failure", doc(drop="on_log_failure"), "on_log_failure: required"),
    ("bad verdict", doc(top='on_low_quality = "block"\n'), "on_low_quality: 'block' is not one of"),
    (
        "log failure cannot quarantine",
        doc(drop="on_log_failure", top='on_log_failure = "quarantine"\n'),
        'on_log_failure: "quarantine" is not allowed',
    ),
    ("unknown top key", doc(top='colour = "red"\n'), "colour: unknown key"),
    ("unknown rule key", doc(PDQ_RULE + rule(name='"b"', colour='"red"')), "rules[1].colour: unknown key"),
    (
        "distance too large",
        doc(rule(signal_types='["pdq"]', max_distance=300)),
        "rules[0].max_distance: 300 is outside 0–256",
    ),
    (
        "distance negative",
        doc(rule(signal_types='["pdq"]', max_distance=-1)),
        "rules[0].max_distance: -1 is outside 0–256",
    ),
    ("distance not int", doc(rule(max_distance='"31"')), "rules[0].max_distance: '31' is not an integer"),
    ("distance missing for pdq", doc(rule(signal_types='["pdq"]')), "rules[0].max_distance: required"),
    ("distance missing, any type", doc(rule()), "rules[0].max_distance: required"),
    (
        "distance missing for phash",
        doc(rule(signal_types='["sha256", "phash"]')),
        "rules[0].max_distance: required",
    ),
    (
        "unknown local bank",
        doc(rule(banks='["ncmc"]', signal_types='["md5"]')),
        "rules[0].banks: unknown local bank 'ncmc'",
    ),
    ("empty bank list", doc(rule(banks="[]", signal_types='["md5"]')), "rules[0].banks: an empty list"),
    (
        "banks not a list",
        doc(rule(banks='"extra"', signal_types='["md5"]')),
        "rules[0].banks: expected a list",
    ),
    (
        "rule on allowlist bank",
        doc(rule(banks='["allowlist"]', signal_types='["md5"]'), top='allowlist_banks = ["allowlist"]\n'),
        "rules[0].banks: 'allowlist' is an allowlist bank",
    ),
    (
        "unknown signal type",
        doc(rule(signal_types='["sha512"]')),
        "rules[0].signal_types: unknown signal type 'sha512'",
    ),
    (
        "signal type the source lacks",
        doc(rule(source='"hma"', signal_types='["sha256"]')),
        "rules[0].signal_types: 'sha256' is not a signal type of hma banks",
    ),
    (
        "video_md5 is not local",
        doc(rule(signal_types='["video_md5"]')),
        "rules[0].signal_types: 'video_md5' is not a signal type of local banks",
    ),
    ("empty signal types", doc(rule(signal_types="[]")), "rules[0].signal_types: expected a non-empty list"),
    ("bad source", doc(rule(source='"remote"', max_distance=1)), "rules[0].source: 'remote' is not one of"),
    ("missing action", doc(rule(action=None, max_distance=1)), "rules[0].action: required"),
    ("bad action", doc(rule(action='"drop"', max_distance=1)), "rules[0].action: 'drop' is not one of"),
    ("shadow not bool", doc(rule(shadow='"yes"', max_distance=1)), "rules[0].shadow: 'yes' is not true"),
    ("missing name", doc(rule(name=None, max_distance=1)), "rules[0].name: required"),
    ("duplicate name", doc(PDQ_RULE + PDQ_RULE), "rules[1].name: 'pdq' is used by an earlier rule"),
    ("rules not array", doc(top='rules = "x"\n'), "rules: expected [[rules]] tables"),
    (
        "status outside 400-599",
        doc("[responses.reject]\nstatus = 200\n"),
        "responses.reject.status: 200 is not an HTTP error status",
    ),
    (
        "bad XRPC name",
        doc('[responses.quarantine]\nerror = "Held For Review"\n'),
        "responses.quarantine.error: 'Held For Review' is not an XRPC error name",
    ),
    ("empty message", doc('[responses.reject]\nmessage = " "\n'), "responses.reject.message: expected"),
    ("unknown response key", doc("[responses.reject]\ncolour = 1\n"), "responses.reject.colour: unknown key"),
    ("unknown responses kind", doc("[responses.forward]\nstatus = 400\n"), "responses.forward: unknown key"),
    ("quality above 100", doc("[hashing]\nmin_pdq_quality = 101\n"), "hashing.min_pdq_quality: 101 is not"),
    ("dihedral not bool", doc('[hashing]\ndihedral = "yes"\n'), "hashing.dihedral: 'yes' is not true"),
    ("unknown hashing key", doc("[hashing]\nthreshold = 3\n"), "hashing.threshold: unknown key"),
    (
        "no frames at all",
        doc("[hashing]\nmax_frames = 0\n"),
        "hashing.max_frames: 0 is not an integer in 1–100_000",
    ),
    ("frames not a number", doc('[hashing]\nmax_frames = "all"\n'), "hashing.max_frames: 'all' is not"),
    ("frames as bool", doc("[hashing]\nmax_frames = true\n"), "hashing.max_frames: True is not"),
    ("negative pixels", doc("[hashing]\nmax_total_pixels = -1\n"), "hashing.max_total_pixels: -1 is not"),
    (
        "unknown allowlist bank",
        doc(top='allowlist_banks = ["goodies"]\n'),
        "allowlist_banks: unknown local bank 'goodies'",
    ),
    ("empty hma_banks", doc(top="hma_banks = []\n"), "hma_banks: an empty list would search no bank"),
    (
        "by-type bad verdict",
        doc('[on_unscannable_by_type]\n"video/*" = "drop"\n'),
        "on_unscannable_by_type.\"video/*\": 'drop' is not one of",
    ),
    (
        "by-type bad glob",
        doc('[on_unscannable_by_type]\n"video" = "reject"\n'),
        'on_unscannable_by_type."video": expected a media type glob',
    ),
    ("TOML syntax", doc(top="on_low_quality = forward\n"), "TOML syntax error: Invalid value (at line 5"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_policy_names_the_key(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert [p for p in problems if expected in p], problems


def test_every_problem_is_reported_at_once() -> None:
    text = doc(
        rule(signal_types='["pdq"]', max_distance=300, colour="1") + "[hashing]\nmin_pdq_quality = -1\n",
        drop="on_matcher_error",
    )
    problems = problems_of(text)
    assert len(problems) == 4, problems
    message = str(PolicyError("test.toml", problems))
    assert message.startswith("test.toml: invalid policy (4 problem(s)):")
    assert "on_matcher_error: required" in message


def test_not_utf8() -> None:
    with pytest.raises(PolicyError, match="not UTF-8"):
        parse_policy(b'on_unhashable = "\xff"', source="x.toml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_policy(tmp_path / "nope.toml")


def test_phash_needs_imagehash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imagehash", None)  # as if the optional extra were not installed
    problems = problems_of(doc(rule(signal_types='["phash"]', max_distance=8)))
    assert problems == [
        "rules[0].signal_types: 'phash' needs the imagehash package (pip install 'upload-gate[imagehash]')"
    ]


def test_bundled_policy_is_valid_on_bundled_banks() -> None:
    banks = build_bank_set(ROOT / "config" / "banks")
    path = ROOT / "config" / "policy.toml"
    policy = load_policy(path, known_banks={"local": banks.names})
    assert policy.version == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert policy.on_low_quality is Verdict.FORWARD
    assert {"blocklist", "allowlist"} <= banks.names
    assert policy.allowlist_banks == frozenset({"allowlist"})
    assert [r.name for r in policy.rules if not r.shadow] == ["blocklist-exact", "blocklist-pdq"]


def test_bundled_policy_comments_every_key() -> None:
    """Every key the parser accepts appears in the reference file (set or commented)."""
    text = (ROOT / "config" / "policy.toml").read_text()
    for key in ("on_unhashable", "on_unscannable", "on_matcher_error", "on_log_failure", "on_low_quality"):
        assert f"\n{key} = " in text
    for key in ("allowlist_banks", "hma_banks", "dihedral", "min_pdq_quality", "status", "error", "message"):
        assert f"{key} = " in text
    for key in ("name", "source", "banks", "signal_types", "max_distance", "action", "shadow"):
        assert f"#   {key}" in text


VALID = [
    ("minimal: no rules, defaults", doc(), 0),
    ("exact-only rule needs no distance", doc(rule(signal_types='["sha256", "cid"]')), 1),
    (
        "hma banks unchecked without HMA in known_banks",
        doc(rule(source='"hma"', banks='["x"]', max_distance=31)),
        1,
    ),
    ("any source with an hma-only bank", doc(rule(source='"any"', banks='["x"]', max_distance=31)), 1),
    ("shadow rule", doc(rule(shadow="true", max_distance=0)), 1),
    (
        "an hma bank may share a local allowlist's name",
        doc(
            rule(source='"hma"', banks='["allowlist"]', max_distance=31),
            top='allowlist_banks = ["allowlist"]\n',
        ),
        1,
    ),
    ("distance bounds", doc(rule(max_distance=0) + rule(name='"b"', max_distance=256)), 2),
]


@pytest.mark.parametrize(("text", "n_rules"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_policy(text: str, n_rules: int) -> None:
    policy = parse_policy(text.encode(), source="t", known_banks=KNOWN)
    assert len(policy.rules) == n_rules


def test_defaults_and_values() -> None:
    policy = parse_policy(doc().encode(), source="t")
    assert policy.reject_response == DEFAULT_REJECT
    assert policy.quarantine_response == DEFAULT_QUARANTINE
    assert policy.on_low_quality is None
    assert policy.hma_banks is None
    assert policy.hashing.dihedral is False
    assert policy.hashing.min_pdq_quality == 50
    assert (policy.hashing.max_frames, policy.hashing.max_total_pixels) == (300, 300_000_000)
    text = doc(
        rule(source='"any"', banks='["extra"]', signal_types='["pdq", "md5"]', max_distance=12)
        + '[on_unscannable_by_type]\n"Video/*" = "reject"\n'
        + '[responses.reject]\nstatus = 451\nerror = "Blocked"\nmessage = "no"\n',
        top='hma_banks = ["a", "b"]\n',
    )
    policy = parse_policy(text.encode(), source="t", known_banks=KNOWN)
    (r,) = policy.rules
    assert r.sources == frozenset({"local", "hma"})
    assert r.banks == frozenset({"extra"})
    assert r.signal_types == frozenset({SignalType.PDQ, SignalType.MD5})
    assert r.max_distance == 12
    assert policy.unscannable_by_type == (("video/*", Verdict.REJECT),)
    assert policy.reject_response.status == 451
    assert policy.hma_banks == frozenset({"a", "b"})


def test_hma_bank_names_checked_when_known() -> None:
    known = {**KNOWN, "hma": frozenset({"csam"})}
    problems = problems_of(doc(rule(source='"hma"', banks='["gifct"]', max_distance=31)), known)
    assert problems == ["rules[0].banks: unknown hma bank 'gifct'"]
    problems = problems_of(doc(rule(source='"any"', banks='["gifct"]', max_distance=31)), known)
    assert problems == ["rules[0].banks: unknown hma or local bank 'gifct'"]


def test_version_is_content_hash() -> None:
    a = parse_policy(doc().encode(), source="t")
    b = parse_policy((doc() + "\n# comment\n").encode(), source="t")
    assert a.version != b.version
    assert a.version == hashlib.sha256(doc().encode()).hexdigest()[:16]


def test_commented_hma_example_is_valid_once_uncommented() -> None:
    text = (ROOT / "config" / "policy.toml").read_text()
    example = text[text.index('# [[rules]]\n# name = "hma-pdq"') :]
    uncommented = "\n".join(line.removeprefix("# ") for line in example.splitlines() if line != "#")
    policy = parse_policy((text + "\n" + uncommented).encode(), source="t", known_banks=None)
    assert [r.name for r in policy.rules][-2:] == ["hma-pdq", "hma-video"]
    assert policy.rules[-1].signal_types == frozenset({SignalType.VIDEO_MD5})
