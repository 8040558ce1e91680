"""NCMEC-scale bank files: plain rows read in bulk give exactly what reading them one at a time gives
(lines, problems, labels, duplicates), and an indexed set kept on disk is served from it, the same."""

from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path

import numpy as np
import pytest

from gate.matching.bank_cache import BankCache
from gate.matching.bank_file import BLOCK
from gate.matching.local import LocalBanks
from gate.policy.load import parse_policy
from gate.policy.plan import compile_plan
from gate.settings import Settings
from gate.signals import SignalType
from gate.types import Hashes, PdqHash

POLICY = compile_plan(
    parse_policy(
        b"""
on_unhashable = "reject"
on_unscannable = "forward"
on_matcher_error = "quarantine"
on_log_failure = "forward"
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
""",
        source="t",
    )
)
BODY = b"an upload"
MD5, SHA1 = hashlib.md5(BODY).hexdigest(), hashlib.sha1(BODY).hexdigest()


def hashes(pdq: str) -> Hashes:
    sha256 = hashlib.sha256(BODY).hexdigest()
    return Hashes(
        sha256, MD5, SHA1, "bafkreinone", len(BODY), "image/png", pdq=(PdqHash(pdq, 100, "original"),)
    )


def big_bank(path: Path, rows: int, newline: str = "\n", bom: bool = False) -> tuple[str, dict[int, str]]:
    """A bank of ``rows`` plain PDQ rows across several blocks, with the awkward ones scattered in it;
    the PDQ hash planted at a known line, and the problems expected by line.

    With CRLF line ends, the header is padded so that the first block read ends between a \\r and its
    \\n (the rows before it are 68 characters and the line end)."""
    rng = random.Random(5)
    lines = [f"pdq,{rng.getrandbits(256):064x}" for _ in range(rows)]
    planted = f"{rng.getrandbits(256):064x}"
    header = "signal_type,hash,label"
    if newline == "\r\n":
        cr_at = BLOCK + 2 - (3 if bom else 0)  # in the text: the last byte of the first block read
        header += " " * ((cr_at - 68 - len(header) - 2) % 70)
        assert (header + "\r\n" + "".join(line + "\r\n" for line in lines[1:]))[cr_at : cr_at + 2] == "\r\n"
    special = {
        1: header,
        7: f"PDQ,{planted.upper()}",  # read one at a time (upper-case type): still a row
        rows // 3: f"pdq,{planted},from a report",  # labelled
        rows // 2: f"pdq,{planted[:-1]}g",  # not hex: a problem
        rows // 2 + 1: "pdq,abc",  # too short: a problem
        rows // 2 + 2: f"md5,{MD5}",  # bulk, another type
        rows // 2 + 3: f"md5,{MD5}" + ("\r" if newline == "\n" else ""),  # the same (CRLF), again
        rows // 2 + 4: "# a comment",
        rows - 1: f"sha1,{SHA1.upper()}",
    }
    for line, text in special.items():
        lines[line - 1] = text
    path.write_bytes(
        (b"\xef\xbb\xbf" if bom else b"") + newline.join(lines).encode()
    )  # no line end at the end
    problems = {rows // 2: "expected 64 hex digits", rows // 2 + 1: "expected 64 hex digits"}
    return planted, problems


@pytest.mark.parametrize(("newline", "bom"), [("\n", False), ("\r\n", False), ("\r\n", True), ("\r", True)])
async def test_plain_rows_in_bulk_read_as_one_at_a_time(tmp_path: Path, newline: str, bom: bool) -> None:
    rows = 3 * BLOCK // 69  # three blocks and more
    planted, problems = big_bank(tmp_path / "big.csv", rows, newline, bom)
    banks = LocalBanks(tmp_path)
    banks.load()
    found = [p.split(": ", 1) for p in banks.problems]
    assert [(where, message[:22]) for where, message in found] == [
        (f"big.csv:{line}", message) for line, message in problems.items()
    ]
    assert banks.banks.counts["big"] == {SignalType.PDQ: rows - 7, SignalType.MD5: 2, SignalType.SHA1: 1}
    result = await banks.match(hashes(planted), POLICY)
    assert sorted((m.signal_type.value, m.content_id, m.label, m.distance) for m in result.matches) == [
        ("md5", f"big.csv:{rows // 2 + 2}", None, None),
        ("md5", f"big.csv:{rows // 2 + 3}", None, None),
        ("pdq", f"big.csv:{rows // 3}", "from a report", 0),
        ("pdq", "big.csv:7", None, 0),
        ("sha1", f"big.csv:{rows - 1}", None, None),
    ]


async def test_a_large_bank_is_indexed_once_and_mapped_back_from_the_cache(tmp_path: Path) -> None:
    banks_dir, cache_dir = tmp_path / "banks", tmp_path / "cache"
    banks_dir.mkdir()
    planted, _ = big_bank(banks_dir / "big.csv", 20_000)
    (banks_dir / "small.csv").write_text(f"cid,{'bafkrei' + 'a' * 52}\nmd5,{MD5},small one\n")
    plain = LocalBanks(banks_dir)
    plain.load()
    first = LocalBanks(banks_dir, BankCache(cache_dir, min_rows=1000))
    first.load()
    assert [e.name for e in cache_dir.iterdir()] == [
        sha256_of(banks_dir / "big.csv")
    ]  # small: read each time
    again = LocalBanks(banks_dir, BankCache(cache_dir, min_rows=1000))
    again.load()
    [big] = again.banks.perceptual(SignalType.PDQ)
    assert isinstance(big.index.rows, np.memmap)  # mapped from the cache, not read
    want = await plain.match(hashes(planted), POLICY)
    for served in (first, again):
        assert (served.version(), served.banks.counts, served.problems) == (
            plain.version(),
            plain.banks.counts,
            plain.problems,
        )
        got = await served.match(hashes(planted), POLICY)
        assert sorted(map(repr, got.matches)) == sorted(map(repr, want.matches))

    # A change to the small file is read alone: the big part is kept as it is.
    with (banks_dir / "small.csv").open("a") as f:
        f.write(f"sha1,{SHA1}\n")
    assert await again.reload_if_changed()
    assert again.banks.perceptual(SignalType.PDQ)[0] is big
    assert any(m.signal_type is SignalType.SHA1 for m in (await again.match(hashes(planted), POLICY)).matches)
    # New content in the big one is a new entry; the old entry goes.
    with (banks_dir / "big.csv").open("a") as f:
        f.write(f"\npdq,{'0' * 64}\n")
    assert await again.reload_if_changed()
    assert [e.name for e in cache_dir.iterdir()] == [sha256_of(banks_dir / "big.csv")]
    assert again.banks.counts["big"][SignalType.PDQ] == plain.banks.counts["big"][SignalType.PDQ] + 1


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_unusable_cache_never_stops_the_banks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    banks_dir = tmp_path / "banks"
    banks_dir.mkdir()
    big_bank(banks_dir / "big.csv", 5_000)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache would go")
    with caplog.at_level(logging.WARNING):
        banks = LocalBanks(banks_dir, BankCache(blocked, min_rows=1000))
        banks.load()
    assert banks.banks.counts["big"][SignalType.PDQ] > 4000
    assert "bank cache" in caplog.text and "not written" in caplog.text
    # A damaged entry is read around, not trusted.
    cache = BankCache(tmp_path / "cache", min_rows=1000)
    LocalBanks(banks_dir, cache).load()
    [entry] = (tmp_path / "cache").iterdir()
    (entry / "pdq" / "rows.npy").unlink()
    with caplog.at_level(logging.WARNING):
        again = LocalBanks(banks_dir, cache)
        again.load()
    assert "unusable" in caplog.text
    assert again.banks.counts == banks.banks.counts


@pytest.mark.parametrize(
    ("env", "where"),
    [
        ({"GATE_DATA_DIR": "/srv/gate"}, "/srv/gate/bank-cache"),
        ({"GATE_DATA_DIR": "/srv/gate", "GATE_BANK_CACHE": "/var/cache/gate"}, "/var/cache/gate"),
    ],
)
def test_the_bank_cache_lives_in_the_data_directory_unless_configured(
    env: dict[str, str], where: str
) -> None:
    assert Settings.from_env(env).bank_cache_dir == Path(where)
