"""A running gate re-judges what it forwarded when a bank gains hashes: a picture forwarded clean, then
a hash near it (PDQ) and another's exact SHA-256 added to a bank file, become ``retro`` decisions naming
their originals and the added rows, and the policy's [scan] choice (withhold) applies at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import REGISTRY

from gate.notify.webhook import SIGNATURE_HEADER, verify
from gate.store.query import row_to_json
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import OTHER_PDQ
from tests.integration.conftest import POLICY, GateFactory
from tests.support import images
from tests.support.boot import gate_env
from tests.support.policies import HMA_CLOSE, head
from tests.support.receiver import Receiver, receiver
from tests.support.scrape import sample, settled_sample
from tests.support.tokens import unsigned

DID = "did:plc:retrohuntretrohuntretroh"
AUTH = {
    "Authorization": "Bearer " + unsigned({"sub": DID, "scope": "com.atproto.access"}),
    "Content-Type": "image/png",
}
SCAN = '\n[scan]\nreject = ["withhold"]\nquarantine = []\n'
HOOK_SECRET = "retro-hook-secret"
RUNS = "upload_gate_retro_runs_total"


async def upload(url: str, body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/xrpc/com.atproto.repo.uploadBlob", data=body, headers=AUTH) as r,
    ):
        return r.status


async def rows(gate: Any, where: str, *args: object) -> list[dict[str, Any]]:
    pool = gate.deps.database.pool
    return [
        row_to_json(r)
        for r in await pool.fetch(f"SELECT * FROM decisions WHERE {where} ORDER BY time", *args)
    ]


async def eventually(gate: Any, where: str, *args: object, count: int = 1) -> list[dict[str, Any]]:
    for _ in range(150):
        found = await rows(gate, where, *args)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no rows where {where}")


def seconds_since(then: datetime, row: dict[str, Any]) -> float:
    return (datetime.fromisoformat(row["time"]) - then).total_seconds()


def flip(hex_hash: str, bits: int) -> str:
    value = int(hex_hash, 16) ^ ((1 << bits) - 1)
    return f"{value:064x}"


async def retro_events(rec: Receiver, count: int) -> list[dict[str, Any]]:
    """The signed webhook events of retro decisions, once ``count`` have arrived."""
    for _ in range(150):
        events = [
            json.loads(r.body) for r in rec.got if verify(HOOK_SECRET, r.headers[SIGNATURE_HEADER], r.body)
        ]
        found = [e for e in events if e["type"].startswith("retro.")]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} retro events expected, got {[json.loads(r.body) for r in rec.got]}")


async def test_a_bank_addition_rejudges_what_was_forwarded(start_gate: GateFactory) -> None:
    async with receiver() as hooks:
        await _bank_addition(start_gate, hooks)


async def _bank_addition(start_gate: GateFactory, hooks: Receiver) -> None:
    gate = await start_gate(
        policy=POLICY + SCAN, GATE_WEBHOOK_URL=hooks.url + "/hook", GATE_WEBHOOK_SECRET=HOOK_SECRET
    )
    near, exact = images.jpeg(quality=90), images.noise_png(seed=11)
    assert await upload(gate.url, near) == 200
    assert await upload(gate.url, exact) == 200
    [near_row, exact_row] = await eventually(gate, "source = 'upload' AND verdict = 'forward'", count=2)
    before = REGISTRY.get_sample_value("upload_gate_retro_hits_total", {"verdict": "reject"}) or 0.0
    done = await sample(gate.admin_url, RUNS, kind="bank", outcome="done")
    failed = await sample(gate.admin_url, RUNS, kind="bank", outcome="failed")

    pdq = flip(near_row["pdq"][0]["hash"], 5)  # 5 bits from the stored hash: within the rule's 31
    bank = gate.deps.settings.banks_dir / "blocklist.csv"
    added_at = datetime.now(UTC)
    bank.write_text(f"pdq,{pdq},added later\nsha256,{hashlib.sha256(exact).hexdigest()},added later\n")

    retro = await eventually(gate, "source = 'retro'", count=2)
    by_origin = {r["origin"]: r for r in retro}
    for r in retro:  # by the gate itself, within one reload interval (plus the reload's own work)
        assert seconds_since(added_at, r) < gate.deps.settings.reload_interval + 1.5
    assert set(by_origin) == {near_row["id"], exact_row["id"]}
    for original, rule, line in ((near_row, "block-pdq", 1), (exact_row, "block-exact", 2)):
        r = by_origin[original["id"]]
        assert (r["verdict"], r["rule"], r["did"], r["cid"]) == ("reject", rule, DID, original["cid"])
        assert f"retro: blocklist blocklist.csv:{line} added" in r["notes"]
        assert [(a["action"], a["result"]) for a in r["actions"]] == [("withhold", "done")]
        assert any(m["content_id"] == f"blocklist.csv:{line}" for m in r["matches"])
        async with aiohttp.ClientSession() as s:
            params = {"did": DID, "cid": original["cid"]}
            async with s.get(gate.url + "/xrpc/com.atproto.sync.getBlob", params=params) as got:
                assert got.status == 400 and (await got.json())["message"] == "Blob not found"
    after = REGISTRY.get_sample_value("upload_gate_retro_hits_total", {"verdict": "reject"}) or 0.0
    assert after - before == 2
    # One hunt, done, on the gate's /metrics (it counts once the hunt returns, after its last row).
    assert await settled_sample(gate.admin_url, RUNS, done + 1, kind="bank", outcome="done") == done + 1
    # Webhooks: one signed retro.rejected event each, naming the original and what [scan] did.
    events = await retro_events(hooks, 2)
    assert {(e["type"], e["data"]["origin"], e["data"]["rule"]) for e in events} == {
        ("retro.rejected", near_row["id"], "block-pdq"),
        ("retro.rejected", exact_row["id"], "block-exact"),
    }
    for e in events:
        assert e["data"]["decision_id"] == by_origin[e["data"]["origin"]]["id"]
        assert e["data"]["actions"] == [{"action": "withhold", "result": "done", "detail": None}]

    # Touching the file again adds nothing new: no second retro decision.
    bank.write_text(bank.read_text() + "# a comment\n")
    await asyncio.sleep(1.0)
    assert len(await rows(gate, "source = 'retro'")) == 2
    # No new entry, no hunt: counted neither done nor failed.
    assert await sample(gate.admin_url, RUNS, kind="bank", outcome="done") == done + 1
    assert await sample(gate.admin_url, RUNS, kind="bank", outcome="failed") == failed


HMA_POLICY = head(hma_banks='["HMA_BLOCK"]') + HMA_CLOSE + SCAN


async def test_an_hma_index_rebuild_rejudges_the_window(start_gate: GateFactory) -> None:
    async with FakeHma() as hma:
        hma.add_bank("HMA_BLOCK")
        hma.add_signal("HMA_BLOCK", "pdq", OTHER_PDQ)
        gate = await start_gate(
            policy=HMA_POLICY, GATE_HMA_URL=hma.url, GATE_HMA_STATUS_INTERVAL="0.1", GATE_RETRO_HMA_RATE="50"
        )
        body = images.rotated()
        assert await upload(gate.url, body) == 200  # HMA's answer ("no match") is cached now
        [original] = await eventually(gate, "source = 'upload' AND verdict = 'forward'")
        await asyncio.sleep(1.1)  # built_to has a resolution of one second
        rebuilt_at = datetime.now(UTC)
        hma.add_signal("HMA_BLOCK", "pdq", original["pdq"][0]["hash"])  # and the index is rebuilt

        [retro] = await eventually(gate, "source = 'retro'")
        # Seen at the next look at /m/index/status (every 0.1 s here), then looked up at 50/s.
        assert seconds_since(rebuilt_at, retro) < 0.1 + 1.5
        assert (retro["origin"], retro["verdict"], retro["rule"]) == (original["id"], "reject", "hma-close")
        assert any(n.startswith("retro: HMA index built_to") for n in retro["notes"])
        assert [(a["action"], a["result"]) for a in retro["actions"]] == [("withhold", "done")]


async def test_an_hma_rebuild_looks_the_window_up_at_a_bounded_rate(start_gate: GateFactory) -> None:
    """GATE_RETRO_HMA_RATE: six stored decisions looked up again at two a second (one second of burst)
    take about two seconds, however fast HMA answers: HMA is not flooded."""
    async with FakeHma() as hma:
        hma.add_bank("HMA_BLOCK")
        hma.add_signal("HMA_BLOCK", "pdq", OTHER_PDQ)
        gate = await start_gate(
            policy=HMA_POLICY, GATE_HMA_URL=hma.url, GATE_HMA_STATUS_INTERVAL="0.1", GATE_RETRO_HMA_RATE="2"
        )
        for quality in (70, 75, 80, 85, 90, 95):
            assert await upload(gate.url, images.jpeg(quality=quality)) == 200
        originals = await eventually(gate, "source = 'upload' AND verdict = 'forward'", count=6)
        await asyncio.sleep(1.1)  # built_to has a resolution of one second
        for pdq in {o["pdq"][0]["hash"] for o in originals}:  # one rebuild: no await in between
            hma.add_signal("HMA_BLOCK", "pdq", pdq)

        retro = await eventually(gate, "source = 'retro'", count=6)
        assert {r["origin"] for r in retro} == {o["id"] for o in originals}
        times = sorted(datetime.fromisoformat(r["time"]) for r in retro)
        assert (times[-1] - times[0]).total_seconds() >= 1.5, times


async def test_scan_retro_on_demand(start_gate: GateFactory, fresh_dsn: str, tmp_path: Path) -> None:
    """``upload-gate scan retro``: every bank entry against the log, on demand; a second run finds the
    decision already re-judged and records nothing more."""
    gate = await start_gate(policy=POLICY + SCAN)
    body = images.noise_png(seed=23)
    assert await upload(gate.url, body) == 200
    [original] = await eventually(gate, "source = 'upload' AND verdict = 'forward'")
    banks = tmp_path / "cli-banks"  # the banks as the operator will have them (the gate's stay as they are)
    shutil.copytree(gate.deps.settings.banks_dir, banks)
    (banks / "blocklist.csv").write_text(f"sha256,{hashlib.sha256(body).hexdigest()},reported today\n")
    env = {
        **os.environ,
        **gate_env(
            str(gate.deps.settings.upstream),
            fresh_dsn,
            gate.deps.settings.policy_path,
            banks,
            tmp_path / "cli",
        ),
    }

    def retro() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "gate", "scan", "retro", "--json"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        result: dict[str, dict[str, Any]] = json.loads(done.stdout)
        return result["local"]

    first = await asyncio.to_thread(retro)
    assert (first["hits"], first["judged"], first["verdicts"]) == (1, 1, {"reject": 1})
    assert first["actions"] == {"withhold:done": 1}
    [row] = await rows(gate, "source = 'retro'")
    assert (row["origin"], row["rule"]) == (original["id"], "block-exact")
    second = await asyncio.to_thread(retro)
    assert (second["hits"], second["judged"], second["already_rejudged"]) == (1, 0, 1)
