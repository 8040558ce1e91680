"""Listing commands on an empty database say so, on stdout, with exit status 0 — an operator can tell
"nothing there" from "nothing printed" — while their JSON forms stay empty for scripts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.boot import gate_command


@pytest.fixture
def env(tmp_path: Path, fresh_dsn: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATE_") and k != "DATABASE_URL"}
    return base | {"DATABASE_URL": fresh_dsn, "GATE_DATA_DIR": str(tmp_path / "var")}


def gate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return gate_command(*args, env=env)


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (
            ("admin", "token", "list"),
            "no tokens; create one with `upload-gate admin token add NAME --role reviewer`\n",
        ),
        (("evidence", "list"), "no evidence items\n"),
        (("evidence", "list", "--state", "held"), "no held evidence items\n"),
        (("allowlist", "list"), "no released hashes on the allowlist\n"),
        (("decisions", "--since", "1h"), "no decisions match\n"),
    ],
)
def test_an_empty_list_says_so(env: dict[str, str], command: tuple[str, ...], says: str) -> None:
    assert gate(env, "migrate").returncode == 0
    result = gate(env, *command)
    assert (result.returncode, result.stdout) == (0, says), result.stderr


def test_empty_json_is_empty(env: dict[str, str]) -> None:
    assert gate(env, "migrate").returncode == 0
    for command in (("allowlist", "list", "--json"), ("decisions", "--json")):
        result = gate(env, *command)
        assert (result.returncode, result.stdout) == (0, ""), result.stderr
