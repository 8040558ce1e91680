"""Local CSV banks: loading, invalid rows reported with file:line, exact and PDQ matching, reload."""

from __future__ import annotations

import hashlib
import logging
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from gate.matching.bank_set import BankError
from gate.matching.local import LocalBanks
from gate.policy.evaluate import evaluate
from gate.policy.load import parse_policy
from gate.policy.model import Policy
from gate.policy.plan import compile_plan
from gate.signals import SignalType
from gate.types import Hashes, MatchResult, PdqHash, Variant, Verdict
from tests.support.cids import cid_of

rng = random.Random(7)


def rand_hex(bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def flip(hex_: str, n: int) -> str:
    """``hex_`` with exactly ``n`` distinct bits flipped."""
    bits = len(hex_) * 4
    value = int(hex_, 16)
    for pos in rng.sample(range(bits), n):
        value ^= 1 << pos
    return f"{value:0{bits // 4}x}"


BODY = b"some upload"
SHA256 = hashlib.sha256(BODY).hexdigest()
MD5 = hashlib.md5(BODY).hexdigest()
SHA1 = hashlib.sha1(BODY).hexdigest()
CID = cid_of(BODY)
BANKED_PDQ = rand_hex(256)


def hashes(*pdq: str, media_type: str = "image/png") -> Hashes:
    return Hashes(
        sha256=SHA256,
        md5=MD5,
        sha1=SHA1,
        cid=CID,
        size=len(BODY),
        media_type=media_type,
        pdq=tuple(PdqHash(h, 100, f"t{i}") for i, h in enumerate(pdq)),
    )


POLICY_TEXT = """
on_unhashable = "reject"
on_unscannable = "forward"
on_matcher_error = "quarantine"
on_log_failure = "forward"
allowlist_banks = ["good"]

[[rules]]
name = "exact"
source = "local"
signal_types = ["sha256", "md5", "sha1", "cid"]
action = "reject"

[[rules]]
name = "near"
source = "local"
signal_types = ["pdq"]
max_distance = 31
action = "reject"
"""


def policy(text: str = POLICY_TEXT) -> Policy:
    return parse_policy(text.encode(), source="t")


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def bank_dir(tmp_path: Path) -> Path:
    (tmp_path / "block.csv").write_text(
        "# a comment\n"
        "signal_type,hash,label\n"
        f"sha256,{SHA256.upper()},from a report\n"
        f"pdq,{BANKED_PDQ}\n"
        "\n"
        f'md5,{MD5},"label, with a comma"\n'
    )
    (tmp_path / "good.csv").write_text(f"cid,{CID}\n")
    (tmp_path / "notes.txt").write_text("not a bank\n")
    return tmp_path


def loaded(path: Path) -> LocalBanks:
    banks = LocalBanks(path)
    banks.load()
    return banks


async def test_loads_banks_and_matches_exact(bank_dir: Path) -> None:
    banks = loaded(bank_dir)
    assert banks.names() == frozenset({"block", "good"})
    assert banks.problems == ()
    assert counter("upload_gate_bank_hashes", bank="block", signal="pdq") == 1
    assert counter("upload_gate_bank_hashes", bank="good", signal="cid") == 1
    result = await banks.match(hashes(), compile_plan(policy()))
    found = {(m.bank, m.signal_type, m.content_id, m.label) for m in result.matches}
    assert found == {
        ("block", SignalType.SHA256, "block.csv:3", "from a report"),
        ("block", SignalType.MD5, "block.csv:6", "label, with a comma"),
        ("good", SignalType.CID, "good.csv:1", None),
    }
    assert result.failures == ()
    # the allowlisted CID wins over the banked SHA-256
    assert evaluate(policy(), hashes(), result).rule == "allowlist"


INVALID_ROWS = [
    ("pdq,abc", "expected 64 hex digits for a PDQ hash"),
    ("md5," + "g" * 32, "expected 32 hex digits for an MD5"),
    ("sha1," + "a" * 39, "expected 40 hex digits for a SHA-1"),
    ("sha256," + "a" * 63, "expected 64 hex digits for a SHA-256"),
    ("cid,bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", "expected a CIDv1 raw sha2-256"),
    ("cid,notacid", "expected a CIDv1 raw sha2-256"),
    ("phash,123", "expected 16 hex digits for a 64-bit phash"),
    ("dhash," + "z" * 16, "expected 16 hex digits for a 64-bit dhash"),
    ("sha512," + "a" * 128, "unknown signal type 'sha512'"),
    ("video_md5," + "a" * 32, "unknown signal type 'video_md5'"),
    ("just-one-field", "expected signal_type,hash[,label]; got 1 field(s)"),
    ("md5," + "a" * 32 + ",label,extra", "got 4 field(s)"),
]


@pytest.mark.parametrize(("row", "message"), INVALID_ROWS, ids=[r[1] + " " + r[0][:8] for r in INVALID_ROWS])
def test_invalid_rows_are_reported_with_file_and_line(
    tmp_path: Path, row: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "mixed.csv").write_text(f"md5,{MD5}\n# comment\n{row}\nsha1,{SHA1}\n")
    before = counter("upload_gate_bank_invalid_rows_total", bank="mixed")
    with caplog.at_level(logging.WARNING):
        banks = loaded(tmp_path)
    assert len(banks.problems) == 1
    assert banks.problems[0].startswith("mixed.csv:3: ")
    assert message in banks.problems[0]
    assert "mixed.csv:3" in caplog.text
    assert counter("upload_gate_bank_invalid_rows_total", bank="mixed") == before + 1
    assert banks.banks.counts["mixed"] == {SignalType.MD5: 1, SignalType.SHA1: 1}


async def test_pdq_threshold_is_inclusive(bank_dir: Path) -> None:
    banks = loaded(bank_dir)
    for distance, expected in [(0, True), (30, True), (31, True), (32, False), (90, False)]:
        result = await banks.match(hashes(flip(BANKED_PDQ, distance)), compile_plan(policy()))
        pdq = [m for m in result.matches if m.signal_type is SignalType.PDQ]
        assert bool(pdq) is expected, distance
        if expected:
            assert pdq[0].distance == distance
            assert pdq[0].content_id == "block.csv:4"


async def test_query_radius_follows_the_widest_rule_including_shadow(bank_dir: Path) -> None:
    text = POLICY_TEXT + (
        '\n[[rules]]\nname = "wide"\nsource = "local"\nsignal_types = ["pdq"]\n'
        'max_distance = 70\naction = "quarantine"\nshadow = true\n'
    )
    assert compile_plan(policy(text)).local.max_distance == {SignalType.PDQ: 70}
    banks = loaded(bank_dir)
    result = await banks.match(hashes(flip(BANKED_PDQ, 60)), compile_plan(policy(text)))
    (pdq,) = [m for m in result.matches if m.signal_type is SignalType.PDQ]
    assert pdq.distance == 60
    decision = evaluate(policy(text), hashes(), MatchResult((pdq,)))
    assert decision.verdict is Verdict.FORWARD  # beyond the enforced 31 bits
    assert decision.shadow is not None and decision.shadow.rule == "wide"


async def test_no_rule_for_local_pdq_means_no_pdq_query(bank_dir: Path) -> None:
    text = POLICY_TEXT.split('[[rules]]\nname = "near"', maxsplit=1)[0]
    result = await loaded(bank_dir).match(hashes(BANKED_PDQ), compile_plan(policy(text)))
    assert not [m for m in result.matches if m.signal_type is SignalType.PDQ]


async def test_dihedral_reports_the_closest_query_per_entry(tmp_path: Path) -> None:
    second = rand_hex(256)
    (tmp_path / "b.csv").write_text(f"pdq,{BANKED_PDQ}\npdq,{second}\n")
    banks = loaded(tmp_path)
    far, close, other = flip(BANKED_PDQ, 25), flip(BANKED_PDQ, 4), flip(second, 12)
    result = await banks.match(hashes(far, close, other), compile_plan(policy()))
    got = sorted((m.content_id, m.distance, m.query_hash) for m in result.matches)
    assert got == [("b.csv:1", 4, close), ("b.csv:2", 12, other)]


async def test_a_match_on_any_frame_or_orientation_says_which(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text(f"pdq,{BANKED_PDQ}\n")
    banks = loaded(tmp_path)
    nearest = flip(BANKED_PDQ, 2)
    upload = replace(
        hashes(),
        pdq=(
            PdqHash(rand_hex(256), 90),  # a clean first frame
            PdqHash(flip(BANKED_PDQ, 3), 90, "original", frame=4),
            PdqHash(nearest, 90, "rotate270", frame=6, variant=Variant.DISPLAYED),
        ),
    )
    (match,) = (await banks.match(upload, compile_plan(policy()))).matches
    assert (match.distance, match.frame, match.variant, match.query_hash) == (
        2,
        6,
        Variant.DISPLAYED,
        nearest,
    )
    assert match.to_json()["frame"] == 6 and match.to_json()["variant"] == "displayed"
    assert evaluate(policy(), upload, MatchResult((match,))).verdict is Verdict.REJECT


async def test_phash_and_dhash_banks(tmp_path: Path) -> None:
    ph, dh = rand_hex(64), rand_hex(64)
    (tmp_path / "p.csv").write_text(f"phash,{ph.upper()}\ndhash,{dh}\n")
    text = POLICY_TEXT + (
        '\n[[rules]]\nname = "ph"\nsource = "local"\nsignal_types = ["phash", "dhash"]\n'
        'max_distance = 8\naction = "reject"\n'
    )
    banks = loaded(tmp_path)
    probe = replace(hashes(), phash=flip(ph, 8), dhash=flip(dh, 9))
    result = await banks.match(probe, compile_plan(policy(text)))
    assert [(m.signal_type, m.distance) for m in result.matches] == [(SignalType.PHASH, 8)]


async def test_empty_bank_dir_and_missing_dir(tmp_path: Path) -> None:
    banks = loaded(tmp_path)
    assert banks.names() == frozenset()
    assert (await banks.match(hashes(BANKED_PDQ), compile_plan(policy()))).matches == ()
    with pytest.raises(BankError, match="does not exist"):
        LocalBanks(tmp_path / "missing").load()


def test_unreadable_file_stops_initial_load(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_bytes(b"md5,\xff\xfe\n")
    with pytest.raises(BankError, match=r"bad.csv: not UTF-8"):
        loaded(tmp_path)


def bump(path: Path, text: str | bytes) -> None:
    """Write and move the mtime forward, so the change is seen even within one clock tick."""
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def test_reload_on_change(bank_dir: Path) -> None:
    banks = loaded(bank_dir)
    v1 = banks.version()
    assert await banks.reload_if_changed() is False  # nothing changed
    new_md5 = hashlib.md5(b"other").hexdigest()
    ok_before = counter("upload_gate_bank_reloads_total", result="ok")
    bump(bank_dir / "extra.csv", f"md5,{new_md5}\n")
    assert await banks.reload_if_changed() is True
    assert banks.version() != v1
    assert "extra" in banks.names()
    assert counter("upload_gate_bank_reloads_total", result="ok") == ok_before + 1
    other = replace(hashes(), md5=new_md5)
    md5_hits = [
        m
        for m in (await banks.match(other, compile_plan(policy()))).matches
        if m.signal_type is SignalType.MD5
    ]
    assert [(m.bank, m.content_id) for m in md5_hits] == [("extra", "extra.csv:1")]
    (bank_dir / "extra.csv").unlink()
    assert await banks.reload_if_changed() is True
    assert "extra" not in banks.names()


async def test_skipped_rows_follow_the_files_in_force(bank_dir: Path) -> None:
    bump(bank_dir / "extra.csv", f"md5,{MD5}\nmd5,nothex\nsha1,short\n")
    banks = loaded(bank_dir)
    assert counter("upload_gate_bank_skipped_rows", bank="extra") == 2
    assert counter("upload_gate_bank_skipped_rows", bank="block") == 0
    bump(bank_dir / "extra.csv", f"md5,{MD5}\n")  # fixed: nothing skipped any more
    assert await banks.reload_if_changed() is True
    assert counter("upload_gate_bank_skipped_rows", bank="extra") == 0
    bump(bank_dir / "extra.csv", f"md5,{MD5}\nmd5,nothex\n")
    assert await banks.reload_if_changed() is True
    assert counter("upload_gate_bank_skipped_rows", bank="extra") == 1
    (bank_dir / "extra.csv").unlink()  # a bank gone skips nothing
    assert await banks.reload_if_changed() is True
    assert counter("upload_gate_bank_skipped_rows", bank="extra") == 0


async def test_broken_file_keeps_last_good(bank_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    banks = loaded(bank_dir)
    v1 = banks.version()
    errors_before = counter("upload_gate_bank_reloads_total", result="error")
    # an unreadable file: the whole reload is refused
    bump(bank_dir / "block.csv", b"sha256,\xff\n")
    with caplog.at_level(logging.ERROR):
        assert await banks.reload_if_changed() is False
    assert banks.version() == v1
    assert "keeping version" in caplog.text and "block.csv: not UTF-8" in caplog.text
    assert counter("upload_gate_bank_reloads_total", result="error") == errors_before + 1
    assert counter("upload_gate_bank_last_reload_successful") == 0  # the files on disk are not in force
    assert await banks.reload_if_changed() is False  # the same broken state is reported once
    assert counter("upload_gate_bank_reloads_total", result="error") == errors_before + 1
    still = await banks.match(hashes(), compile_plan(policy()))
    assert {m.bank for m in still.matches} == {"block", "good"}
    # a bank whose every row turned invalid (a botched save) is not taken as "empty the bank"
    bump(bank_dir / "block.csv", "sha256,deadbeef\npdq,nothex\n")
    assert await banks.reload_if_changed() is False
    assert banks.version() == v1
    # a fixed file reloads
    bump(bank_dir / "block.csv", f"sha256,{SHA256}\n")
    assert await banks.reload_if_changed() is True
    assert banks.version() != v1
    assert counter("upload_gate_bank_last_reload_successful") == 1


async def test_version_follows_content_not_mtime(bank_dir: Path) -> None:
    a = loaded(bank_dir).version()
    bump(bank_dir / "block.csv", (bank_dir / "block.csv").read_text())
    assert loaded(bank_dir).version() == a
    bump(bank_dir / "good.csv", (bank_dir / "good.csv").read_text() + "# note\n")
    assert loaded(bank_dir).version() != a
