"""The Dockerfile's HEALTHCHECK, run for real: it passes against the running gate and fails when nothing
answers. (The image's command, ENV and directories are run by tests/e2e/test_deployments.py.)"""

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


def test_healthcheck_passes_against_the_gate_and_fails_without_it(gate: Gate) -> None:
    # The gate listens on ports the kernel chose (GATE_METRICS_LISTEN asks for :0): ask where it is.
    assert run_healthcheck(gate.metrics_url.removeprefix("http://")) == 0
    assert run_healthcheck(f"{LOOPBACK}:{free_port()}") != 0
