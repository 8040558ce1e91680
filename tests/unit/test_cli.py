"""The console entry point as an operator runs it: every subcommand is wired in and answers --help."""

from __future__ import annotations

import subprocess
import sys

from gate.cli import build_parser


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gate", *args], capture_output=True, text=True, timeout=60)


def test_every_command_answers_help() -> None:
    top = run("--help")
    assert top.returncode == 0, top.stderr
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"serve", "check-policy", "hash"} <= set(commands)
    for name in commands:
        assert name in top.stdout
        result = run(name, "--help")
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_serve_refuses_bad_settings_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gate", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"GATE_LISTEN": "nowhere", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "GATE_LISTEN='nowhere'" in result.stderr and result.stdout == ""


def test_serve_refuses_an_invalid_policy_with_its_key_path(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    policy = tmp_path / "policy.toml"
    policy.write_text('on_unhashable = "reject"\non_unscannable = "forward"\non_log_failure = "forward"\n')
    banks = tmp_path / "banks"
    banks.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "GATE_POLICY": str(policy),
        "GATE_BANKS_DIR": str(banks),
        "GATE_DATA_DIR": str(tmp_path / "var"),
        "GATE_LISTEN": "127.0.0.1:0",
        "GATE_METRICS_LISTEN": "127.0.0.1:0",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
    }
    result = subprocess.run(
        [sys.executable, "-m", "gate", "serve"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "on_matcher_error" in result.stderr and "invalid" in result.stderr and result.stdout == ""


def test_a_bad_log_level_is_a_settings_error_not_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gate", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"GATE_LOG_LEVEL": "verbose", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "upload-gate: invalid settings:\n  GATE_LOG_LEVEL='verbose': expected one of"
    )
