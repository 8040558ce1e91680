"""Start-up / reload bank checks against GET /c/banks, and ``upload-gate hma check``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import pytest
from prometheus_client import REGISTRY

from gate.matching.hma_banks import HmaBankCheck, hma_bank_names
from gate.matching.hma_client import HmaClient
from gate.matching.hma_command import check, register
from gate.types import Verdict
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import hma_rule, make_policy


async def run_check(fake: FakeHma, policy_banks: list[str] | None, rule_banks: list[str] | None) -> list[str]:
    client = HmaClient(fake.url)
    try:
        validate = HmaBankCheck(client)
        return await validate(
            make_policy([hma_rule("r", Verdict.REJECT, 10, banks=rule_banks)], hma_banks=policy_banks)
        )
    finally:
        await client.aclose()


async def test_a_policy_naming_banks_hma_has_is_accepted(fake_hma: FakeHma) -> None:
    assert await run_check(fake_hma, ["BANK_A"], ["BANK_A", "BANK_B"]) == []


@pytest.mark.parametrize(
    ("policy_banks", "rule_banks", "where"),
    [(["BANK_A", "MISSING"], None, "hma_banks"), (None, ["BANK_A", "MISSING"], "rule 'r'")],
)
async def test_a_policy_naming_a_bank_hma_lacks_is_refused(
    fake_hma: FakeHma, policy_banks: list[str] | None, rule_banks: list[str] | None, where: str
) -> None:
    problems = await run_check(fake_hma, policy_banks, rule_banks)
    assert problems == [
        f"{where} names HMA bank 'MISSING', which HMA does not have (HMA has: BANK_A, BANK_B)"
    ]


async def test_a_rule_for_both_sources_may_name_a_local_bank(fake_hma: FakeHma) -> None:
    client = HmaClient(fake_hma.url)
    rule = hma_rule("both", Verdict.REJECT, 10, banks=["BANK_A", "LOCAL_ONLY"], sources=["hma", "local"])
    assert await HmaBankCheck(client)(make_policy([rule])) == []
    await client.aclose()


async def test_a_relied_on_bank_below_ratio_one_is_a_warning(
    fake_hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    fake_hma.banks["BANK_B"].ratio = 0.25
    with caplog.at_level(logging.WARNING, logger="gate.matching.hma_banks"):
        assert await run_check(fake_hma, None, None) == []
    assert "HMA bank 'BANK_B' has matching_enabled_ratio 0.25 < 1.0" in caplog.text
    assert REGISTRY.get_sample_value("upload_gate_hma_bank_matching_ratio", {"bank": "BANK_B"}) == 0.25


async def test_an_unreachable_hma_cannot_refuse_a_policy(
    fake_hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    await fake_hma.stop()
    with caplog.at_level(logging.WARNING, logger="gate.matching.hma_banks"):
        assert await run_check(fake_hma, ["ANY"], None) == []
    assert "cannot check the policy's HMA banks" in caplog.text


async def test_bank_names_for_the_policy_loader(fake_hma: FakeHma) -> None:
    client = HmaClient(fake_hma.url)
    assert await hma_bank_names(client) == {"BANK_A", "BANK_B"}
    await client.aclose()


async def test_hma_check_prints_status_banks_index_and_round_trip(
    fake_hma: FakeHma, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_hma.banks["BANK_B"].ratio = 0.5
    assert await check(fake_hma.url, 2.0) == 0
    out = capsys.readouterr().out
    assert "status     I-AM-ALIVE (ready)" in out
    assert "round trip" in out and "ms (median of 5 GET /status/live)" in out
    assert "BANK_A" in out and "matching_enabled_ratio 0.5  <- GET /m/lookup skips it at random" in out
    assert "index      pdq: 2 hashes, built 20" in out
    assert "index      video_md5: 0 hashes" in out


async def test_hma_check_fails_when_hma_is_not_ready(
    fake_hma: FakeHma, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_hma.ready = False
    assert await check(fake_hma.url, 2.0) == 1
    assert "INDEX-NOT-LOADED (NOT READY)" in capsys.readouterr().out


async def test_hma_check_fails_when_hma_is_down(
    fake_hma: FakeHma, capsys: pytest.CaptureFixture[str]
) -> None:
    await fake_hma.stop()
    assert await check(fake_hma.url, 2.0) == 1
    assert "cannot connect" in capsys.readouterr().out


def test_hma_check_without_a_configured_hma_says_how_to_configure_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GATE_HMA_URL", raising=False)
    parser = argparse.ArgumentParser()
    parser.add_argument("--env-file")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["hma", "check"])
    assert args.func(args) == 2
    assert "set GATE_HMA_URL or pass --url" in capsys.readouterr().out


async def test_a_rule_for_both_sources_must_name_a_bank_one_of_them_has(fake_hma: FakeHma) -> None:
    client = HmaClient(fake_hma.url)
    check_both = HmaBankCheck(client, local_banks=lambda: frozenset({"LOCAL_ONLY"}))
    rule = hma_rule(
        "both", Verdict.REJECT, 10, banks=["BANK_A", "LOCAL_ONLY", "NOWHERE"], sources=["hma", "local"]
    )
    problems = await check_both(make_policy([rule]))
    await client.aclose()
    assert problems == ["rule 'both' names bank 'NOWHERE', which neither HMA nor the local banks have"]


async def test_the_real_cli_checks_an_hma_named_by_gate_hma_url(fake_hma: FakeHma) -> None:
    env = {**os.environ, "GATE_HMA_URL": fake_hma.url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gate", "hma", "check", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert f"HMA        {fake_hma.url}" in out.decode() and "I-AM-ALIVE (ready)" in out.decode()
