"""Fixtures that start the real gate (``tests.support.boot.in_process``) on real ports in front of a recording
upstream. Each test writes its own policy and banks into a temporary directory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gate.serve import RunningGate
from tests.support.boot import gate_env, in_process
from tests.support.policies import head
from tests.support.serving import serving
from tests.support.upstream import RecordingUpstream

POLICY = (
    head()
    + """
[[rules]]
name = "block-exact"
source = "local"
banks = ["blocklist"]
signal_types = ["sha256", "md5"]
action = "reject"

[[rules]]
name = "block-pdq"
source = "local"
banks = ["blocklist"]
signal_types = ["pdq"]
max_distance = 31
action = "reject"

[[rules]]
name = "hold-pdq"
source = "local"
banks = ["review"]
signal_types = ["pdq"]
max_distance = 31
action = "quarantine"
"""
)


def write_config(
    tmp_path: Path, policy: str = POLICY, banks: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """The policy file and bank files (the test policy's banks, empty unless given) under ``tmp_path``."""
    banks_dir = tmp_path / "banks"
    banks_dir.mkdir(exist_ok=True)
    for name, rows in {"blocklist": "", "review": "", "allowlist": "", **(banks or {})}.items():
        (banks_dir / f"{name}.csv").write_text(rows + "\n")
    policy_path = tmp_path / "policy.toml"
    policy_path.write_text(policy)
    return policy_path, banks_dir


def process_env(
    tmp_path: Path, upstream_url: str, dsn: str, policy: str = POLICY, banks: dict[str, str] | None = None
) -> dict[str, str]:
    """The settings of a gate run as operators run it (``boot.gate_process``) on ``policy`` (the test
    policy unless given) and ``banks`` (as ``write_config`` takes them), its data directory
    ``tmp_path / "var"``."""
    return gate_env(upstream_url, dsn, *write_config(tmp_path, policy, banks), tmp_path / "var")


GateFactory = Callable[..., Awaitable[RunningGate]]


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[RecordingUpstream, str]]:
    rec = RecordingUpstream()
    async with serving(rec.app()) as url:
        yield rec, url


@pytest.fixture
async def start_gate(
    tmp_path: Path, upstream: tuple[RecordingUpstream, str], fresh_dsn: str
) -> AsyncIterator[GateFactory]:
    """``await start_gate(policy=..., banks={"blocklist": "sha256,<hex>,x"}, GATE_X=...)``.

    Decisions go to a fresh schema on the session's Postgres (pass ``DATABASE_URL=""`` and a
    ``GATE_DATA_DIR`` for the gate's own embedded one). Each gate gets its own data directory: two gates
    never share a spool (the second would refuse to start).
    The gate also gets an evidence key (the test policy quarantines); pass ``GATE_EVIDENCE_KEY=""`` to
    start it without one."""
    async with contextlib.AsyncExitStack() as stack:
        started = 0

        async def start(policy: str = POLICY, banks: dict[str, str] | None = None, **env: str) -> RunningGate:
            nonlocal started
            started += 1
            policy_path, banks_dir = write_config(tmp_path, policy, banks)
            data_dir = tmp_path / f"var{started}"
            settings = {
                **gate_env(upstream[1], fresh_dsn, policy_path, banks_dir, data_dir),
                "GATE_RELOAD_INTERVAL": "0.2",
                **env,
            }
            return await stack.enter_async_context(in_process(settings))

        yield start
