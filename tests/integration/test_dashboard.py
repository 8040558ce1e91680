"""The shipped Grafana dashboard (deploy/grafana/upload-gate.json), tested against a real Prometheus: the
gate runs as operators run it (``python -m gate serve --workers 2``, the fake HMA beside it), judges
real uploads of every kind, Debian's ``prometheus`` scrapes its /metrics with the shipped alert rules
loaded, and every panel's query, its variables filled in as Grafana would, is evaluated through
Prometheus's HTTP API: each must parse and select series. No panel is silently empty because of a typo."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import OTHER_PDQ
from tests.integration.conftest import process_env
from tests.support import images
from tests.support.boot import GateProcess, gate_process
from tests.support.policies import HMA_CLOSE, head
from tests.support.prometheus import Prometheus, prometheus
from tests.support.tokens import ALICE_BEARER
from tests.support.upstream import RecordingUpstream

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "upload-gate.json"
RULES = ROOT / "deploy" / "prometheus" / "upload-gate-rules.yml"
JOB = "upload-gate"
RATE_INTERVAL = "1m"  # what Grafana's $__rate_interval becomes at a 15 s scrape interval, or more
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"

POLICY = (
    head(hma_banks='["HMA_BLOCK"]')
    + """
[[rules]]
name = "block-exact"
source = "local"
banks = ["blocklist"]
signal_types = ["sha256"]
action = "reject"

[[rules]]
name = "hold-exact"
source = "local"
banks = ["review"]
signal_types = ["sha256"]
action = "quarantine"
"""
    + HMA_CLOSE
    + """
[[rules]]
name = "watch"
source = "local"
banks = ["watch"]
signal_types = ["sha256"]
action = "quarantine"
shadow = true
"""
)

BLOCKED, HELD, WATCHED, CLEAN, STRANGER = (images.noise_png(seed) for seed in (31, 32, 33, 34, 35))
HMA_BANNED = images.jpeg("astronaut.png")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(items: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in dashboard()["panels"] if items is None else items:
        yield panel
        yield from panels(panel.get("panels", []))


def filled(expr: str, instance: str) -> str:
    """A query as Grafana sends it: the job and instance chosen (a regex variable's value escaped for a
    PromQL string, as Grafana does), $__rate_interval resolved."""
    in_promql = re.escape(instance).replace("\\", "\\\\")
    return (
        expr.replace("$__rate_interval", RATE_INTERVAL).replace("$job", JOB).replace("$instance", in_promql)
    )


@pytest.fixture
async def hma() -> AsyncIterator[FakeHma]:
    async with FakeHma() as fake:
        fake.add_bank("HMA_BLOCK")
        fake.add_signal("HMA_BLOCK", "pdq", hash_bytes(HMA_BANNED, HashOptions()).pdq[0].hex)
        fake.add_signal("HMA_BLOCK", "pdq", OTHER_PDQ)  # two hashes: HMA's one-hash-index bug stays away
        yield fake


@pytest.fixture
async def gate(
    tmp_path: Path, upstream: tuple[RecordingUpstream, str], fresh_dsn: str, hma: FakeHma
) -> AsyncIterator[GateProcess]:
    banks = {
        "blocklist": f"sha256,{sha(BLOCKED)},x",
        "review": f"sha256,{sha(HELD)},x",
        "watch": f"sha256,{sha(WATCHED)},x",
    }
    env = {
        **process_env(tmp_path, upstream[1], fresh_dsn, POLICY, banks),
        "GATE_HMA_URL": hma.url,
        "GATE_MAX_UPLOADS_PER_IP": "0",
    }
    upstream[0].accepted_auth = {ALICE_BEARER}
    async with gate_process(env, tmp_path, args=("serve", "--workers", "2")) as running:
        yield running


async def upload(gate: GateProcess, body: bytes, authorization: str | None = ALICE_BEARER) -> int:
    headers = {"Content-Type": "image/png"} | ({"Authorization": authorization} if authorization else {})
    # A fresh connection each: SO_REUSEPORT spreads connections over both workers.
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.post(gate.url + UPLOAD, data=body, headers=headers) as r,
    ):
        await r.read()
        return r.status


async def judge_uploads(gate: GateProcess) -> None:
    """One of each: forwarded, rejected (local and HMA), held, a shadow hit, unscannable, refused by the
    PDS, anonymous; and a request passed through."""
    answers = [
        await upload(gate, CLEAN),
        await upload(gate, BLOCKED),
        await upload(gate, HMA_BANNED),
        await upload(gate, HELD),
        await upload(gate, WATCHED),
        await upload(gate, b"%PDF-1.7 not a picture"),
        await upload(gate, STRANGER, authorization="Bearer someone-else"),
        await upload(gate, CLEAN, authorization=None),
    ]
    assert answers == [200, 400, 400, 400, 200, 200, 400, 401]
    async with aiohttp.ClientSession() as s, s.get(gate.url + "/xrpc/_health") as r:
        assert r.status == 200


async def scraped(prom: Prometheus, times: int) -> None:
    """Until Prometheus has scraped the gate ``times`` times (within the last minute)."""
    deadline = time.monotonic() + 60
    query = f'count_over_time(up{{job="{JOB}"}}[1m]) >= {times}'
    while not await prom.query(query):
        assert time.monotonic() < deadline, f"not scraped {times} times\n{prom.log.read_text()}"
        await asyncio.sleep(0.5)


def test_the_dashboard_is_importable_with_a_datasource_variable() -> None:
    board = dashboard()
    assert board["uid"] == "upload-gate" and board["title"] and board["schemaVersion"] >= 36
    assert board["id"] is None  # import creates it
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    everywhere = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == everywhere, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == everywhere, panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"
    for name in ("job", "instance"):
        assert variables[name]["datasource"] == everywhere


async def test_every_panel_query_selects_series_from_a_gate_that_judged_uploads(
    gate: GateProcess, tmp_path: Path
) -> None:
    target = gate.admin_url.removeprefix("http://")
    async with prometheus(tmp_path / "prometheus", JOB, [target], rule_files=(RULES,)) as prom:
        await scraped(prom, 2)  # rates need samples from before the uploads
        await judge_uploads(gate)
        await scraped(prom, 6)

        # The variables, as Grafana's label_values() finds them.
        variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
        assert variables["job"]["query"]["query"] == "label_values(upload_gate_build_info, job)"
        assert {s["metric"]["job"] for s in await prom.query("upload_gate_build_info")} == {JOB}
        instance_query = variables["instance"]["query"]["query"]
        assert instance_query == 'label_values(upload_gate_build_info{job="$job"}, instance)'
        found = await prom.query(f'upload_gate_build_info{{job="{JOB}"}}')
        assert {s["metric"]["instance"] for s in found} == {target}

        empty, failed = [], []
        queries = 0
        for panel in panels():
            for t in panel.get("targets", []):
                queries += 1
                try:
                    series = await prom.query(filled(t["expr"], target))
                except AssertionError as exc:
                    failed.append(f"{panel['title']} [{t['refId']}]: {exc}")
                    continue
                if not series:
                    empty.append(f"{panel['title']} [{t['refId']}]: {t['expr']}")
        assert not failed, "queries Prometheus refused:\n" + "\n".join(failed)
        assert not empty, "panels that select nothing:\n" + "\n".join(empty)
        assert queries >= 60

        # What the uploads above must show, through the dashboard's own queries.
        by_panel = {p["title"]: p for p in panels()}
        decisions = await prom.query(
            filled(by_panel["Decisions by verdict and reason"]["targets"][0]["expr"], target)
        )
        seen = {
            (s["metric"]["verdict"], s["metric"]["reason"]) for s in decisions if float(s["value"][1]) > 0
        }
        assert {
            ("forward", "no_match"),
            ("reject", "match"),
            ("quarantine", "match"),
            ("forward", "unscannable"),
        } <= seen
        banks = await prom.query(filled(by_panel["Block rate by bank"]["targets"][0]["expr"], target))
        assert {(s["metric"]["source"], s["metric"]["bank"]) for s in banks} == {
            ("local", "blocklist"),
            ("local", "review"),
            ("hma", "HMA_BLOCK"),
        }
        ready = await prom.query(filled(by_panel["Readiness"]["targets"][0]["expr"], target))
        assert {s["metric"]["check"]: s["value"][1] for s in ready} == {
            "policy": "1",
            "decision_log": "1",
            "evidence": "1",
            "hma": "1",
        }
        held = await prom.query(filled(by_panel["Held for review"]["targets"][0]["expr"], target))
        assert [s["value"][1] for s in held] == ["1"]

        # The alert rules evaluate cleanly on the same series, and none fires for a healthy gate.
        groups = (await prom.api("/api/v1/rules"))["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert rules and all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
        firing = [a for a in (await prom.api("/api/v1/alerts"))["alerts"] if a["state"] == "firing"]
        assert firing == []
