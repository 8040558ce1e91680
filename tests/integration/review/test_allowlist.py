"""Releasing to the allowlist bank file: the row the bank loader reads, reloaded at once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gate.matching.local import LocalBanks
from gate.policy.reload import PolicyHolder
from gate.quarantine.allowlist import Allowlist, AllowlistUnavailable
from tests.integration.review.conftest import POLICY


async def allowlist(tmp_path: Path, policy_text: str, allow_rows: str) -> tuple[Allowlist, LocalBanks]:
    banks_dir = tmp_path / "banks"
    banks_dir.mkdir()
    (banks_dir / "allowlist.csv").write_text(allow_rows)
    banks = LocalBanks(banks_dir)
    banks.load()
    (tmp_path / "policy.toml").write_text(policy_text)
    policy = PolicyHolder(tmp_path / "policy.toml", lambda: {"local": banks.names()}, [])
    await policy.load_initial()
    return Allowlist(banks_dir, policy, banks), banks


async def test_row_is_appended_after_a_file_without_a_final_newline(tmp_path: Path) -> None:
    other = hashlib.sha256(b"other").hexdigest()
    allow, banks = await allowlist(tmp_path, POLICY, f"sha256,{other},hand-edited")
    sha = hashlib.sha256(b"x").hexdigest()
    assert await allow.add_sha256(sha, "0190-abc", "rita") == "allowlist"
    lines = (tmp_path / "banks" / "allowlist.csv").read_text().splitlines()
    assert lines[0] == f"sha256,{other},hand-edited"
    assert lines[1].startswith(f"sha256,{sha},released 0190-abc by rita ")
    assert banks.problems == ()
    assert sum(banks.banks.counts["allowlist"].values()) == 2  # reloaded already


async def test_without_an_allowlist_bank_release_is_refused(tmp_path: Path) -> None:
    allow, _ = await allowlist(tmp_path, POLICY.replace('allowlist_banks = ["allowlist"]', ""), "")
    with pytest.raises(AllowlistUnavailable, match="allowlist_banks"):
        await allow.add_sha256(hashlib.sha256(b"x").hexdigest(), "id", "rita")
    assert (tmp_path / "banks" / "allowlist.csv").read_text() == ""
