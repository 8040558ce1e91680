"""Reviewer/admin tokens without a database: roles, and the old tokens file the gate imports once.
(The table itself: tests/integration/admin/test_tokens.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.admin.tokens import Principal, Role, TokenError, parse_legacy_file, token_hash


def test_roles() -> None:
    reviewer, admin = Principal("r", Role.REVIEWER), Principal("a", Role.ADMIN)
    assert reviewer.may(Role.REVIEWER) and not reviewer.may(Role.ADMIN)
    assert admin.may(Role.REVIEWER) and admin.may(Role.ADMIN)


def test_a_legacy_file_gives_names_roles_and_hashes() -> None:
    digest = token_hash("ugt_x")
    text = f"# tokens\nalice reviewer sha256:{digest} 2026-01-01T00:00:00Z\n\nbob admin sha256:{'A' * 64}\n"
    assert parse_legacy_file(text, Path("t")) == [
        ("alice", Role.REVIEWER, digest),
        ("bob", Role.ADMIN, "a" * 64),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("alice reviewer abc", "t:1: expected NAME ROLE"),
        ("alice superuser sha256:" + "0" * 64, "t:1: role must be reviewer or admin"),
        ("al!ce admin sha256:" + "0" * 64, "t:1: duplicate or malformed"),
        ("alice admin sha256:" + "g" * 64, "t:1: duplicate or malformed"),
    ],
)
def test_a_malformed_legacy_file_is_refused_whole(line: str, problem: str) -> None:
    with pytest.raises(TokenError, match=problem):
        parse_legacy_file(line + "\n", Path("t"))
