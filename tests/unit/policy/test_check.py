"""``upload-gate check-policy FILE`` as an operator runs it: a subprocess, its output and exit code."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate", "check-policy", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bundled_policy_ok() -> None:
    done = run("config/policy.toml")
    version = hashlib.sha256((ROOT / "config/policy.toml").read_bytes()).hexdigest()[:16]
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"OK {version}: 3 rules\n"


def test_every_problem_printed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = (ROOT / "config/policy.toml").read_text()
    text = text.replace('on_matcher_error = "quarantine"\n', "").replace(
        "max_distance = 31", "max_distance = 300"
    )
    text = text.replace(
        'banks = ["blocklist"]\nsignal_types = ["pdq"]\nmax_distance = 50',
        'banks = ["ncmc"]\nsignal_types = ["pdq"]\nmax_distance = 50',
    )
    bad.write_text(text)
    done = run(str(bad), "--banks-dir", "config/banks")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "on_matcher_error: required" in done.stderr
    assert "rules[1].max_distance: 300 is outside" in done.stderr
    assert "rules[2].banks: unknown local bank 'ncmc'" in done.stderr


def test_banks_dir_names_are_checked(tmp_path: Path) -> None:
    done = run("config/policy.toml", "--banks-dir", str(tmp_path))
    assert done.returncode == 1
    assert "unknown local bank 'blocklist'" in done.stderr
    assert "allowlist_banks: unknown local bank 'allowlist'" in done.stderr


def test_missing_file(tmp_path: Path) -> None:
    done = run(str(tmp_path / "nope.toml"))
    assert done.returncode == 1
    assert "nope.toml: invalid policy (1 problem(s)):\n  - cannot read the file" in done.stderr


def test_banks_dir_from_env_file(tmp_path: Path) -> None:
    env = tmp_path / "gate.env"
    env.write_text(f"GATE_BANKS_DIR={tmp_path}\n")
    done = subprocess.run(
        [sys.executable, "-m", "gate", "--env-file", str(env), "check-policy", "config/policy.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "GATE_BANKS_DIR"},
    )
    assert done.returncode == 1
    assert "rules[0].banks: unknown local bank 'blocklist'" in done.stderr
