"""The Dockerfile's commands, run for real: its CMD is how this suite starts the gate, and its
HEALTHCHECK passes against the running gate and fails when nothing answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Stage, parse
from tests.e2e.gate_server import Gate
from tests.e2e.procs import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def final_stage() -> Stage:
    return parse(REPO / "Dockerfile")[1][-1]


def run_healthcheck(metrics_listen: str) -> int:
    command = final_stage().all("HEALTHCHECK")[0].exec_form()
    assert command[0] == "python"
    env = dict(os.environ, GATE_METRICS_LISTEN=metrics_listen)
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30).returncode


def test_the_image_starts_the_gate_the_way_this_suite_does(gate: Gate) -> None:
    command = final_stage().all("CMD")[-1].exec_form()
    assert command[0] == "python"
    assert list(gate.proc.popen.args)[1:] == command[1:]  # type: ignore[arg-type]


def test_healthcheck_passes_against_the_gate_and_fails_without_it(gate: Gate) -> None:
    assert run_healthcheck(gate.env["GATE_METRICS_LISTEN"]) == 0
    assert run_healthcheck(f"{LOOPBACK}:{free_port()}") != 0
