"""``upload-gate scan retro --metrics-file``: the real CLI on a real Postgres with the fake HMA (a real
aiohttp server following ../shared/facts/hma-api.md) writes a node_exporter textfile that Debian's
promtool reads, counting the run under the serving gate's ``upload_gate_retro_runs_total{kind, outcome}``
and on from the file an earlier run left; the shipped alert fires on the series a stopped HMA pass
leaves, and not on a done hunt's."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gate.scan.store import insert_decision
from gate.store.pool import Pool
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import OTHER_PDQ
from tests.integration.conftest import write_config
from tests.support.boot import gate_command, gate_env, process_env
from tests.support.policies import HMA_CLOSE, head
from tests.support.prometheus import need
from tests.support.stored import forwarded

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "upload-gate-rules.yml"
DID = "did:plc:retrometricsfileretrometr"
POLICY = head(hma_banks='["HMA_BLOCK"]') + HMA_CLOSE + '\n[scan]\nreject = ["withhold"]\nquarantine = []\n'
STORED = [hashlib.sha256(f"stored picture {n}".encode()).hexdigest() for n in range(3)]  # far apart
RUNS = "upload_gate_retro_runs_total"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(path: Path) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def runs(found: Samples) -> dict[tuple[str, str], float]:
    """``upload_gate_retro_runs_total`` by (kind, outcome)."""
    return {(dict(k)["kind"], dict(k)["outcome"]): v for (name, k), v in found.items() if name == RUNS}


def figure(found: Samples, name: str, **labels: str) -> float:
    return found[(f"upload_gate_scan_retro_{name}", tuple(sorted(labels.items())))]


def promtool_reads(path: Path) -> None:
    checked = subprocess.run(
        [need("promtool"), "check", "metrics"], input=path.read_bytes(), capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stderr.decode() + checked.stdout.decode()


@pytest.fixture
async def hma() -> AsyncIterator[FakeHma]:
    async with FakeHma() as fake:
        fake.add_bank("HMA_BLOCK")
        fake.add_signal("HMA_BLOCK", "pdq", OTHER_PDQ)
        yield fake


async def test_a_done_hunt_then_a_stopped_hma_pass(
    tmp_path: Path, fresh_dsn: str, pds: str, hma: FakeHma
) -> None:
    pool = Pool(fresh_dsn)
    try:
        for n, pdq in enumerate(STORED):
            await insert_decision(pool, forwarded(f"picture {n}".encode(), DID, pdq))
    finally:
        await pool.close()
    for pdq in STORED:
        hma.add_signal("HMA_BLOCK", "pdq", pdq)
    policy_path, banks_dir = write_config(tmp_path, POLICY)
    env = process_env(
        {
            **gate_env(pds, fresh_dsn, policy_path, banks_dir, tmp_path / "var"),
            "GATE_HMA_URL": hma.url,
            "GATE_RETRO_HMA_RATE": "50",
        }
    )
    path = tmp_path / "textfile" / "upload-gate-retro.prom"
    path.parent.mkdir()
    command = ("scan", "retro", "--hma", "--json", "--metrics-file", str(path))

    done = await asyncio.to_thread(gate_command, *command, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    promtool_reads(path)
    first = samples(path)
    assert runs(first) == {
        ("bank", "done"): 1, ("bank", "failed"): 0, ("hma", "done"): 1, ("hma", "stopped"): 0, ("hma", "failed"): 0,
    }  # fmt: skip
    assert (figure(first, "hits", kind="hma"), figure(first, "judged", kind="hma")) == (3, 3)
    assert figure(first, "verdicts", kind="hma", verdict="reject") == 3
    assert (figure(first, "hits", kind="bank"), figure(first, "judged", kind="bank")) == (0, 0)
    for key, n in summary["hma"]["actions"].items():  # what the terminal says, the file says
        action, _, result = key.partition(":")
        assert figure(first, "actions", kind="hma", action=action, result=result) == n
    assert summary["hma"]["actions"]
    started = figure(first, "started_timestamp_seconds")
    assert 0 < started <= figure(first, "finished_timestamp_seconds")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # written aside and renamed

    hma.fail = "http_500"
    stopped = await asyncio.to_thread(gate_command, *command, env=env)
    assert stopped.returncode == 1, stopped.stderr
    assert "the HMA pass stopped" in stopped.stderr
    promtool_reads(path)
    second = samples(path)
    assert runs(second) == {
        ("bank", "done"): 2, ("bank", "failed"): 0, ("hma", "done"): 1, ("hma", "stopped"): 1, ("hma", "failed"): 0,
    }  # counted on from the first run's file  # fmt: skip
    assert figure(second, "hits", kind="hma") == 0
    assert figure(second, "finished_timestamp_seconds") == 0  # not every part done
    assert figure(second, "started_timestamp_seconds") > started

    # What node_exporter serves from the file, first run's then second's: the shipped alert fires for
    # the stopped HMA pass only (promtool compares the whole set of alerts).
    assert_alert_fires_for(tmp_path, [runs(first), runs(second)], ("hma", "stopped"))


def assert_alert_fires_for(
    tmp_path: Path, files: list[dict[tuple[str, str], float]], only: tuple[str, str]
) -> None:
    """The shipped UploadGateRetroHuntFailing, in promtool's rule test, on the series node_exporter would
    have served from ``files`` in turn (an hour between them): it fires for ``only`` and no other series."""
    rule = next(
        r
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for r in group["rules"]
        if r.get("alert") == "UploadGateRetroHuntFailing"
    )
    first, second = files
    inputs, expected = [], []
    for kind, outcome in sorted({*first, *second}):
        labels = {"job": "node", "instance": "cron:9100", "kind": kind, "outcome": outcome}
        before, after = first.get((kind, outcome), 0), second.get((kind, outcome), 0)
        series = RUNS + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        inputs.append({"series": series, "values": f"{before:g}x29 {after:g}x30"})  # minutes 0–29, 30–60
        if (kind, outcome) == only:
            expected.append(
                {
                    "exp_labels": {"severity": "warning", **labels},
                    "exp_annotations": filled_in(rule, labels, after - before),
                }
            )
    assert expected, f"no series {only} in the files"
    case = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [{"eval_time": "60m", "alertname": rule["alert"], "exp_alerts": expected}],
            }
        ],
    }
    test = tmp_path / "retro-alert.test.yml"
    test.write_text(yaml.safe_dump(case))
    result = subprocess.run(
        [need("promtool"), "test", "rules", str(test)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def filled_in(rule: dict[str, Any], labels: dict[str, str], value: float) -> dict[str, str]:
    """The rule's annotation templates filled in as Prometheus would for ``labels`` and ``value``."""
    filled = {}
    for name, template in rule["annotations"].items():
        text = str(template).replace("{{ $value | humanize }}", f"{value:g}")
        for label, v in labels.items():
            text = text.replace(f"{{{{ $labels.{label} }}}}", v)
        filled[name] = text
    return filled
