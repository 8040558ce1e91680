"""The console entry point as an operator runs it: every subcommand is wired in and answers --help."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import cast

from gate import package_version
from gate.cli import build_parser
from tests.support import boot


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gate", *args], capture_output=True, text=True, timeout=60)


def test_every_command_answers_help() -> None:
    top = run("--help")
    assert top.returncode == 0, top.stderr
    # The subparsers action's choices are its parsers by command name: typeshed types an Action's choices
    # as any iterable, and the parser's _subparsers group (set by add_subparsers) as optional.
    subparsers = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    commands = cast("dict[str, argparse.ArgumentParser]", subparsers.choices)
    assert {"serve", "check-policy", "hash"} <= set(commands)
    for name in commands:
        assert name in top.stdout
        result = run(name, "--help")
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_serve_refuses_bad_settings_with_a_clear_message() -> None:
    result = boot.refused({"GATE_LISTEN": "nowhere"})
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
        "GATE_POLICY": str(policy),
        "GATE_BANKS_DIR": str(banks),
        "GATE_DATA_DIR": str(tmp_path / "var"),
        "GATE_LISTEN": "127.0.0.1:0",
        "GATE_METRICS_LISTEN": "127.0.0.1:0",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
    }
    result = boot.refused(env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "on_matcher_error" in result.stderr and "invalid" in result.stderr and result.stdout == ""


def test_a_bad_log_level_is_a_settings_error_not_a_traceback() -> None:
    result = boot.refused({"GATE_LOG_LEVEL": "verbose"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "upload-gate: invalid settings:\n  GATE_LOG_LEVEL='verbose': expected one of"
    )


def test_the_lean_passthrough_switch_takes_on_or_off_only() -> None:
    result = boot.refused({"GATE_LEAN_PASSTHROUGH": "yes"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "GATE_LEAN_PASSTHROUGH='yes': expected on or off" in result.stderr


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command's parser, with its command line (``evidence hold``), intermediate ones too."""
    found = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found.append((f"{path} {name}".strip(), child))
                    walk(child, f"{path} {name}")

    walk(build_parser(), "")
    return found


def _example_lines(epilog: str) -> list[str]:
    """The commands in an epilog's ``examples:`` block, without their trailing notes (two spaces on)."""
    lines = epilog.split("examples:\n", 1)[1].splitlines()
    return [re.split(r"\s{2,}", line.strip())[0] for line in lines if line.strip()]


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout == f"upload-gate {package_version()}\n"
    assert package_version() != "unknown"


def test_the_top_level_help_is_written_for_operators() -> None:
    top = " ".join(run("--help").stdout.split())  # as wrapped to any terminal
    assert "judges every com.atproto.repo.uploadBlob" in top
    assert "getting started: upload-gate check-policy" in top
    assert "module" not in top  # not a note about the code's layout


def test_every_command_has_a_description_and_examples_that_parse() -> None:
    parser = build_parser()
    commands = _commands()
    assert len(commands) >= 25
    for path, sub in commands:
        assert sub.description and len(sub.description) > 40, f"{path}: describe it for operators"
        assert sub.epilog and "examples:\n  upload-gate " in sub.epilog, f"{path}: give examples"
        examples = _example_lines(sub.epilog)
        assert any(e.startswith(f"upload-gate {path}") or f" {path} " in f" {e} " for e in examples), path
        for example in examples:
            words = shlex.split(example)
            while "=" in words[0]:  # VAR=value upload-gate ...
                words.pop(0)
            assert words[0] == "upload-gate", example
            try:
                parser.parse_args(words[1:])
            except SystemExit:
                raise AssertionError(f"{path}: the example does not parse: {example}") from None


def test_env_file_is_accepted_before_and_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["--env-file", "a.env", "migrate"]).env_file == "a.env"
    assert parser.parse_args(["migrate", "--env-file", "b.env"]).env_file == "b.env"
    assert parser.parse_args(["admin", "token", "list", "--env-file", "c.env"]).env_file == "c.env"
    assert parser.parse_args(["--env-file", "a.env", "evidence", "list", "--env-file", "d.env"]).env_file == (
        "d.env"
    )
    assert parser.parse_args(["stats"]).env_file is None


def test_env_file_after_the_command_is_read(tmp_path: Path) -> None:
    """check-policy reads GATE_BANKS_DIR from it: a bank only that directory has must be known."""
    banks = tmp_path / "banks"
    banks.mkdir()
    (banks / "special.csv").write_text("")
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'on_unhashable = "reject"\non_unscannable = "forward"\non_matcher_error = "reject"\n'
        'on_log_failure = "forward"\n[[rules]]\nname = "r"\nsource = "local"\nbanks = ["special"]\n'
        'signal_types = ["sha256"]\naction = "reject"\n'
    )
    env_file = tmp_path / "gate.env"
    env_file.write_text(f"GATE_BANKS_DIR={banks}\n")
    env = {"PATH": "/usr/bin:/bin"}
    for args in (
        ("--env-file", str(env_file), "check-policy", str(policy)),
        ("check-policy", str(policy), "--env-file", str(env_file)),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "gate", *args], capture_output=True, text=True, timeout=60, env=env
        )
        assert result.returncode == 0 and result.stdout.startswith("OK "), (args, result.stderr)
    (tmp_path / "config" / "banks").mkdir(parents=True)  # the default, checked, without "special"
    without = subprocess.run(
        [sys.executable, "-m", "gate", "check-policy", str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert without.returncode == 1 and "special" in without.stderr
