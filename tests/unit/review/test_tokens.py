"""Reviewer/admin tokens: the file keeps hashes only, roles gate actions, changes need no restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gate.admin.tokens import Principal, Role, TokenFile, TokenFileError, token_hash


def test_add_stores_only_the_hash_and_authenticates(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens")
    token = tokens.add("alice", Role.REVIEWER)
    text = (tmp_path / "tokens").read_text()
    assert token not in text
    assert f"sha256:{token_hash(token)}" in text
    assert (tmp_path / "tokens").stat().st_mode & 0o077 == 0
    assert tokens.authenticate(token) == Principal("alice", Role.REVIEWER)
    assert tokens.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert tokens.authenticate("") is None


def test_a_second_process_sees_new_and_removed_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    reader = TokenFile(path)
    assert reader.principals() == []
    token = TokenFile(path).add("bob", Role.ADMIN)
    assert reader.authenticate(token) == Principal("bob", Role.ADMIN)
    assert TokenFile(path).remove("bob")
    assert reader.authenticate(token) is None


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("alice reviewer abc", "expected NAME ROLE"),
        ("alice superuser sha256:" + "0" * 64, "role must be reviewer or admin"),
    ],
)
def test_a_malformed_file_lets_nobody_in(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "tokens"
    token = TokenFile(path).add("ok", Role.ADMIN)
    with path.open("a") as f:
        f.write(line + "\n")
    tokens = TokenFile(path)
    with pytest.raises(TokenFileError, match=problem):
        tokens.authenticate(token)


def test_roles() -> None:
    reviewer, admin = Principal("r", Role.REVIEWER), Principal("a", Role.ADMIN)
    assert reviewer.may(Role.REVIEWER) and not reviewer.may(Role.ADMIN)
    assert admin.may(Role.REVIEWER) and admin.may(Role.ADMIN)


def test_duplicate_and_bad_names_are_refused(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens")
    tokens.add("alice", Role.REVIEWER)
    with pytest.raises(TokenFileError, match="exists"):
        tokens.add("alice", Role.ADMIN)
    with pytest.raises(TokenFileError, match="letters, digits"):
        tokens.add("al ice", Role.ADMIN)


def test_cli_prints_the_token_once(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    cmd = [
        sys.executable,
        "-m",
        "gate",
        "admin",
        "token",
        "add",
        "carol",
        "--role",
        "reviewer",
        "--file",
        str(path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    token = done.stdout.strip()
    assert token.startswith("ugt_")
    assert TokenFile(path).authenticate(token) == Principal("carol", Role.REVIEWER)
    listed = subprocess.run(
        [sys.executable, "-m", "gate", "admin", "token", "list", "--file", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout == "carol\treviewer\n"
    assert token not in listed.stdout + listed.stderr
