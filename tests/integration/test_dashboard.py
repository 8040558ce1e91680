"""The shipped Grafana dashboard (deploy/grafana/upload-gate.json), tested against a real Prometheus: the
gate runs as operators run it (``python -m gate serve --workers 2``, the fake HMA beside it), judges
real uploads of every kind, and beside it ``python -m gate watch`` judges the blobs of a generated
firehose (tests/support/firehose.py); Debian's ``prometheus`` scrapes both /metrics, each as its own job,
with the shipped alert rules loaded, and every panel's query, its variables filled in as Grafana would,
is evaluated through Prometheus's HTTP API: each must parse and select series. No panel is silently
empty because of a typo."""

from __future__ import annotations

import asyncio
import contextlib
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
from tests.support import firehose as fh
from tests.support import images
from tests.support.boot import GateProcess, WatchProcess, gate_process, watch_process
from tests.support.policies import HMA_CLOSE, head
from tests.support.prometheus import Prometheus, prometheus
from tests.support.tokens import ALICE_BEARER
from tests.support.upstream import RecordingUpstream

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "upload-gate.json"
RULES = ROOT / "deploy" / "prometheus" / "upload-gate-rules.yml"
JOB = "upload-gate"
WATCH_JOB = "upload-gate-watch"  # as deploy/prometheus/upload-gate-rules.yml names it
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
POSTED = images.noise_png(36)  # on the firehose only
AUTHOR, NOBODY = "did:plc:author", "did:plc:nobody"  # the PLC directory knows the first only
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


def escaped(instance: str) -> str:
    """A regex variable's value escaped for a PromQL string, as Grafana does."""
    return re.escape(instance).replace("\\", "\\\\")


def filled(expr: str, instance: str, watcher: str) -> str:
    """A query as Grafana sends it: the jobs and instances chosen, $__rate_interval resolved."""
    for name, value in (
        ("$__rate_interval", RATE_INTERVAL),
        ("$watch_job", WATCH_JOB),
        ("$watch_instance", escaped(watcher)),
        ("$job", JOB),
        ("$instance", escaped(instance)),
    ):
        expr = expr.replace(name, value)
    return expr


@pytest.fixture
async def hma() -> AsyncIterator[FakeHma]:
    async with FakeHma() as fake:
        fake.add_bank("HMA_BLOCK")
        fake.add_signal("HMA_BLOCK", "pdq", hash_bytes(HMA_BANNED, HashOptions()).pdq[0].hex)
        fake.add_signal("HMA_BLOCK", "pdq", OTHER_PDQ)  # two hashes: HMA's one-hash-index bug stays away
        yield fake


@pytest.fixture
def settings(
    tmp_path: Path, upstream: tuple[RecordingUpstream, str], fresh_dsn: str, hma: FakeHma
) -> dict[str, str]:
    """The settings serve and watch share (one policy, banks, Postgres), as operators run them."""
    banks = {
        "blocklist": f"sha256,{sha(BLOCKED)},x",
        "review": f"sha256,{sha(HELD)},x",
        "watch": f"sha256,{sha(WATCHED)},x",
    }
    upstream[0].accepted_auth = {ALICE_BEARER}
    return {
        **process_env(tmp_path, upstream[1], fresh_dsn, POLICY, banks),
        "GATE_HMA_URL": hma.url,
        "GATE_MAX_UPLOADS_PER_IP": "0",
    }


@pytest.fixture
async def gate(settings: dict[str, str], tmp_path: Path) -> AsyncIterator[GateProcess]:
    async with gate_process(settings, tmp_path, args=("serve", "--workers", "2")) as running:
        yield running


@pytest.fixture
async def network() -> AsyncIterator[fh.Network]:
    """A firehose of three posts: a clean picture, a blocked one, and one by a DID nobody knows (not
    judged: a failure at the identity stage); the PLC directory and the author's PDS beside it."""
    net = fh.Network(dids={AUTHOR}, hold=asyncio.Event())
    for data in (POSTED, BLOCKED):
        net.blobs[fh.blob_cid(data)] = data
    net.frames = [
        fh.commit(1, AUTHOR, {"app.bsky.feed.post/a": fh.post(POSTED)}),
        fh.commit(2, AUTHOR, {"app.bsky.feed.post/b": fh.post(BLOCKED)}),
        fh.commit(3, NOBODY, {"app.bsky.feed.post/c": fh.post(CLEAN)}),
    ]
    async with contextlib.aclosing(fh.running(net)) as it:
        yield await it.__anext__()


@pytest.fixture
async def watcher(
    settings: dict[str, str], tmp_path: Path, gate: GateProcess, network: fh.Network
) -> AsyncIterator[WatchProcess]:
    """``upload-gate watch`` on the gate's settings, started after the gate (which migrated the schema)."""
    env = {
        **settings,
        "GATE_PLC_URL": network.url + "/plc",
        "GATE_FIREHOSE_PDS_ORIGINS": network.url,
        "GATE_FIREHOSE_WORKERS": "1",
    }
    async with watch_process(env, tmp_path / "watch", network.url.replace("http", "ws")) as running:
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
    await ask_api_without_a_token(gate)


async def ask_api_without_a_token(gate: GateProcess) -> None:
    """The hash/match/scan API (on the admin listener), asked without a token: 401."""
    async with aiohttp.ClientSession() as s, s.post(gate.admin_url + "/api/v1/hash", data=b"x") as r:
        assert r.status == 401


async def scraped(prom: Prometheus, times: int, job: str = JOB) -> None:
    """Until Prometheus has scraped ``job`` ``times`` times (within the last minute)."""
    await until(prom, f'count_over_time(up{{job="{job}"}}[1m]) >= {times}')


async def until(prom: Prometheus, query: str) -> None:
    """Until ``query`` selects series (a minute at most)."""
    deadline = time.monotonic() + 60
    while not await prom.query(query):
        assert time.monotonic() < deadline, f"never true: {query}\n{prom.log.read_text()}"
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
    gate: GateProcess, watcher: WatchProcess, network: fh.Network, tmp_path: Path
) -> None:
    # An error answer's series is made by its first (the XRPC error names are not a fixed vocabulary):
    # one before Prometheus starts, so the one judge_uploads makes shows in a rate.
    await ask_api_without_a_token(gate)
    target = gate.admin_url.removeprefix("http://")
    watch_target = watcher.metrics_url.removeprefix("http://")
    async with prometheus(
        tmp_path / "prometheus", JOB, [target], rule_files=(RULES,), also={WATCH_JOB: [watch_target]}
    ) as prom:
        await scraped(prom, 2)  # rates need samples from before the uploads and the firehose's posts
        await scraped(prom, 2, WATCH_JOB)
        assert network.hold is not None
        network.hold.set()
        await judge_uploads(gate)
        # The firehose's three blobs: two judged, one failed.
        await until(prom, f'sum(upload_gate_firehose_blobs_total{{job="{WATCH_JOB}"}}) >= 3')
        await scraped(prom, 6)
        await scraped(prom, 6, WATCH_JOB)

        # The variables, as Grafana's label_values() finds them.
        variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
        assert variables["job"]["query"]["query"] == "label_values(upload_gate_build_info, job)"
        # The watcher judges with the same parts (judge, HMA, decision log): picking its job shows those.
        assert {s["metric"]["job"] for s in await prom.query("upload_gate_build_info")} == {JOB, WATCH_JOB}
        instance_query = variables["instance"]["query"]["query"]
        assert instance_query == 'label_values(upload_gate_build_info{job="$job"}, instance)'
        found = await prom.query(f'upload_gate_build_info{{job="{JOB}"}}')
        assert {s["metric"]["instance"] for s in found} == {target}
        # The watcher's, by the one series only a running watcher sets (its policy's lag limit).
        assert variables["watch_job"]["regex"] == '/job="([^"]+)"/'
        watch_jobs = await prom.query(variables["watch_job"]["query"]["query"].removeprefix("query_result"))
        assert {s["metric"]["job"] for s in watch_jobs} == {WATCH_JOB}
        watch_instance_query = variables["watch_instance"]["query"]["query"]
        assert watch_instance_query == (
            'label_values(upload_gate_firehose_lag_limit_seconds{job="$watch_job"}, instance)'
        )
        found = await prom.query(f'upload_gate_firehose_lag_limit_seconds{{job="{WATCH_JOB}"}}')
        assert {s["metric"]["instance"]: s["value"][1] for s in found} == {watch_target: "600"}

        empty, failed = [], []
        queries = 0
        for panel in panels():
            for t in panel.get("targets", []):
                queries += 1
                try:
                    series = await prom.query(filled(t["expr"], target, watch_target))
                except AssertionError as exc:
                    failed.append(f"{panel['title']} [{t['refId']}]: {exc}")
                    continue
                if not series:
                    empty.append(f"{panel['title']} [{t['refId']}]: {t['expr']}")
        assert not failed, "queries Prometheus refused:\n" + "\n".join(failed)
        assert not empty, "panels that select nothing:\n" + "\n".join(empty)
        assert queries >= 80

        # What the uploads above must show, through the dashboard's own queries.
        by_panel = {p["title"]: p for p in panels()}

        async def through(title: str, ref: int = 0) -> list[dict[str, Any]]:
            return await prom.query(filled(by_panel[title]["targets"][ref]["expr"], target, watch_target))

        def nonzero(series: list[dict[str, Any]], *labels: str) -> set[tuple[str, ...]]:
            return {tuple(s["metric"][n] for n in labels) for s in series if float(s["value"][1]) > 0}

        decisions = await through("Decisions by verdict and reason")
        seen = {
            (s["metric"]["verdict"], s["metric"]["reason"]) for s in decisions if float(s["value"][1]) > 0
        }
        assert {
            ("forward", "no_match"),
            ("reject", "match"),
            ("quarantine", "match"),
            ("forward", "unscannable"),
        } <= seen
        banks = await through("Block rate by bank")
        assert {(s["metric"]["source"], s["metric"]["bank"]) for s in banks} == {
            ("local", "blocklist"),
            ("local", "review"),
            ("hma", "HMA_BLOCK"),
        }
        ready = await through("Readiness")
        assert {s["metric"]["check"]: s["value"][1] for s in ready} == {
            "policy": "1",
            "decision_log": "1",
            "evidence": "1",
            "hma": "1",
        }
        held = await through("Held for review")
        assert [s["value"][1] for s in held] == ["1"]
        # The firehose, through the watcher's own job: its posts judged, the unknown author's failed.
        assert nonzero(await through("Firehose blobs by outcome"), "outcome") == {("judged",), ("failed",)}
        # A failure's series is made by the first one (its kinds are not a fixed vocabulary), so the rate
        # the panel shows starts at the second: the panel selects it, and the counter says one.
        failures = await through("Blobs not judged, by stage and kind")
        assert {(s["metric"]["stage"], s["metric"]["kind"]) for s in failures} == {("identity", "not_found")}
        counted = await prom.query(f'upload_gate_firehose_failures_total{{job="{WATCH_JOB}"}}')
        assert [(s["metric"]["kind"], s["value"][1]) for s in counted] == [("not_found", "1")]
        assert {("forward", "no_match"), ("reject", "match")} <= nonzero(
            await through("Firehose decisions by verdict and reason"), "verdict", "reason"
        )
        assert [s["value"][1] for s in await through("Watcher")] == ["1"]
        assert [s["value"][1] for s in await through("Cursor")] == ["3"]
        # The API call above, by endpoint and answer.
        assert ("/api/v1/hash", "AuthRequired") in nonzero(
            await through("API requests by endpoint and answer"), "endpoint", "answer"
        )

        # The alert rules evaluate cleanly on the same series, and none fires for a healthy gate.
        groups = (await prom.api("/api/v1/rules"))["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert rules and all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
        firing = [a for a in (await prom.api("/api/v1/alerts"))["alerts"] if a["state"] == "firing"]
        assert firing == []
