"""PolicyHolder: a bad start stops the gate; a bad reload keeps the last good policy and counts it."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import signal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from gate import package_version
from gate.policy.load import PolicyError
from gate.policy.model import Policy
from gate.policy.reload import PolicyHolder

GOOD = """
on_unhashable = "reject"
on_unscannable = "forward"
on_matcher_error = "quarantine"
on_log_failure = "forward"

[[rules]]
name = "block"
source = "local"
banks = ["blocklist"]
signal_types = ["sha256"]
action = "reject"
"""
KNOWN = {"local": frozenset({"blocklist"})}


def reloads(result: str) -> float:
    return REGISTRY.get_sample_value("upload_gate_policy_reloads_total", {"result": result}) or 0.0


def info(version: str) -> float | None:
    """upload_gate_build_info of this policy version: 1 while it is in force."""
    labels = {"version": package_version(), "python": platform.python_version(), "policy_version": version}
    return REGISTRY.get_sample_value("upload_gate_build_info", labels)


def reload_ok() -> float | None:
    return REGISTRY.get_sample_value("upload_gate_policy_last_reload_successful")


def write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    write(path, GOOD)
    return path


async def test_invalid_at_start_raises(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    write(path, GOOD.replace('on_matcher_error = "quarantine"\n', ""))
    holder = PolicyHolder(path, lambda: KNOWN)
    with pytest.raises(PolicyError, match="on_matcher_error: required"):
        await holder.load_initial()
    with pytest.raises(RuntimeError):
        holder.current  # noqa: B018 - nothing is in force


async def test_reload_keeps_last_good_on_corrupt_file(
    policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = PolicyHolder(policy_file, lambda: KNOWN)
    first = await holder.load_initial()
    assert info(first.version) == 1
    errors = reloads("error")
    write(policy_file, GOOD.replace("max_distance", "").replace('action = "reject"', 'action = "rejekt"'))
    with caplog.at_level(logging.ERROR):
        assert await holder.reload() is False
    assert holder.current is first
    assert reloads("error") == errors + 1
    assert reload_ok() == 0  # the file on disk is not the policy in force
    assert info(first.version) == 1
    assert "rules[0].action: 'rejekt' is not one of" in caplog.text
    assert f"keeping version {first.version}" in caplog.text
    write(policy_file, "on_unhashable = [")  # TOML syntax error
    assert await holder.reload() is False
    assert holder.current is first
    assert reloads("error") == errors + 2
    policy_file.unlink()  # a missing file too
    assert await holder.reload() is False
    assert holder.current is first
    write(policy_file, GOOD)  # fixed: in force again, and said so
    assert await holder.reload() is True
    assert reload_ok() == 1


async def test_reload_installs_a_good_change(policy_file: Path) -> None:
    holder = PolicyHolder(policy_file, lambda: KNOWN)
    first = await holder.load_initial()
    oks = reloads("ok")
    write(policy_file, GOOD.replace('action = "reject"', 'action = "quarantine"'))
    assert await holder.reload() is True
    assert holder.current.version != first.version
    assert holder.current.rules[0].action == "quarantine"
    assert reloads("ok") == oks + 1
    assert info(holder.current.version) == 1
    assert info(first.version) is None  # the old version's gauge is gone


async def test_known_banks_are_asked_on_every_reload(policy_file: Path) -> None:
    known = dict(KNOWN)
    holder = PolicyHolder(policy_file, lambda: known)
    await holder.load_initial()
    known["local"] = frozenset({"other"})  # the blocklist file was removed
    write(policy_file, GOOD + "\n")
    assert await holder.reload() is False


async def test_validator_hook_can_refuse(policy_file: Path) -> None:
    calls: list[Policy] = []

    async def hma_check(policy: Policy) -> list[str]:
        calls.append(policy)
        return ["hma_banks: unknown hma bank 'x'"] if len(calls) > 1 else []

    holder = PolicyHolder(policy_file, lambda: KNOWN, [hma_check])
    first = await holder.load_initial()
    write(policy_file, GOOD + "\n# edited\n")
    assert await holder.reload() is False
    assert holder.current is first and len(calls) == 2


async def test_sighup_reloads(policy_file: Path) -> None:
    holder = PolicyHolder(policy_file, lambda: KNOWN)
    first = await holder.load_initial()
    loop = asyncio.get_running_loop()
    holder.install_sighup(loop)
    try:
        write(policy_file, GOOD + "\n# after SIGHUP\n")
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            if holder.current.version != first.version:
                break
            await asyncio.sleep(0.01)
        assert holder.current.version != first.version
        write(policy_file, "broken = ")
        errors = reloads("error")
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            if reloads("error") > errors:
                break
            await asyncio.sleep(0.01)
        assert reloads("error") == errors + 1
        assert holder.current.version != first.version  # still the SIGHUP-loaded good one
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


async def test_watch_sees_an_editor_replacing_the_file(policy_file: Path) -> None:
    holder = PolicyHolder(policy_file, lambda: KNOWN)
    first = await holder.load_initial()
    task = asyncio.create_task(holder.watch(0.02))
    try:
        # write-new-then-rename, as vim and most editors save
        tmp = policy_file.with_suffix(".swp")
        tmp.write_text(GOOD + "\n# saved by an editor\n")
        tmp.replace(policy_file)
        for _ in range(200):
            if holder.current.version != first.version:
                break
            await asyncio.sleep(0.01)
        assert holder.current.version != first.version
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
