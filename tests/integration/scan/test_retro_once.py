"""A retro-hunt runs once across every process on one Postgres: two gate replicas (``serve``, as the README
deploys them) that both see a bank gain entries hunt one after the other, and the second finds every hit
already re-judged, so each stored decision gets one ``retro`` decision, one evidence item, one takedown
and one webhook; ``upload-gate scan retro`` run meanwhile waits for the hunt under way and records
nothing more; one killed mid-hunt leaves no lock behind. The PDS is a real aiohttp app on a real port
whose getBlob holds its bodies (so both hunts are under way at once when they can be); the gates are
``run_gate`` itself, on a real Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest
from aiohttp import web

from gate.notify.webhook import SIGNATURE_HEADER, verify
from gate.scan.store import insert_decision
from gate.serve import RunningGate
from gate.store.pool import Pool
from tests.integration.conftest import POLICY, write_config
from tests.support.boot import gate_env, in_process, process_env
from tests.support.cids import cid_of
from tests.support.held_blobs import HeldBlobs
from tests.support.receiver import Receiver, receiver
from tests.support.serving import serving
from tests.support.stored import count, forwarded
from tests.support.waiting import until

BODIES = [bytes([n]) * 2048 for n in (5, 6)]
SCAN = '\n[scan]\nreject = ["withhold", "review", "takedown"]\nquarantine = []\n'
HOOK_SECRET = "retro-once-hook-secret"
TAKEDOWN = "/xrpc/com.atproto.admin.updateSubjectStatus"
STATUS = "/xrpc/com.atproto.admin.getSubjectStatus"
DID = "did:plc:retroonceretroonceretroo"


class AdminPds(HeldBlobs):
    """The held getBlob, and the admin calls a ``takedown`` makes (each takedown recorded): the blob's
    status first, answered as the real PDS answers it for a blob it stores."""

    def __init__(self, blobs: list[bytes]) -> None:
        super().__init__(blobs)
        self.takedowns: list[dict[str, Any]] = []

    async def take_down(self, request: web.Request) -> web.Response:
        self.takedowns.append(await request.json())
        return web.json_response({})

    async def status(self, request: web.Request) -> web.Response:
        did, cid = request.query["did"], request.query["blob"]
        refs = [t["takedown"]["ref"] for t in self.takedowns if t["subject"]["cid"] == cid]
        takedown = {"applied": True, "ref": refs[-1]} if refs else {"applied": False}
        subject = {"$type": "com.atproto.admin.defs#repoBlobRef", "did": did, "cid": cid}
        return web.json_response({"subject": subject, "takedown": takedown})

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post(TAKEDOWN, self.take_down)
        app.router.add_get(STATUS, self.status)
        return app


def scan_retro(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``upload-gate scan retro --json`` as operators run it, on the gates' settings."""
    return subprocess.run(
        [sys.executable, "-m", "gate", "scan", "retro", "--json"],
        env=process_env(env), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def hunts_done(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The tallies the hunts logged when they ended (``RetroTally.summary``)."""
    # logging keeps a lone mapping argument as the record's args itself
    return [dict(cast(Mapping[str, Any], r.args)) for r in caplog.records if r.msg == "retro-hunt done: %s"]


class Setup:
    def __init__(self, tmp_path: Path, dsn: str, pds_url: str, hooks: Receiver) -> None:
        self.dsn = dsn
        policy_path, self.banks_dir = write_config(tmp_path, POLICY + SCAN)
        self.env = {
            **gate_env(pds_url, dsn, policy_path, self.banks_dir, tmp_path / "var"),
            "GATE_RELOAD_INTERVAL": "0.2",
            "GATE_PDS_ADMIN_PASSWORD": "admin-secret",
            "GATE_WEBHOOK_URL": hooks.url + "/hook",
            "GATE_WEBHOOK_SECRET": HOOK_SECRET,
        }
        self.tmp_path = tmp_path
        self.originals: list[str] = []

    async def store_forwarded(self) -> None:
        """The decisions a bank addition will make hunts re-judge (the schema migrated first)."""
        pool = Pool(self.dsn)
        try:
            for body in BODIES:
                record = forwarded(body, DID)
                await insert_decision(pool, record)
                self.originals.append(record.id)
        finally:
            await pool.close()

    @property
    def cli_env(self) -> dict[str, str]:
        """``upload-gate scan retro``'s settings: the gates', in a data directory of its own."""
        return {**self.env, "GATE_DATA_DIR": str(self.tmp_path / "cli")}

    def replica(self, n: int) -> contextlib.AbstractAsyncContextManager[RunningGate]:
        return in_process({**self.env, "GATE_DATA_DIR": str(self.tmp_path / f"var{n}")})

    def ban_them(self) -> None:
        rows = "\n".join(f"sha256,{hashlib.sha256(b).hexdigest()},reported" for b in BODIES)
        (self.banks_dir / "blocklist.csv").write_text(rows + "\n")

    async def assert_rejudged_once(self, pds: AdminPds, hooks: Receiver) -> None:
        """What a user sees of the hunt: one of everything per original decision."""
        conn = await asyncpg.connect(self.dsn)
        try:
            retro = await conn.fetch("SELECT id, origin, actions FROM decisions WHERE source = 'retro'")
            assert sorted(str(r["origin"]).replace("-", "") for r in retro) == sorted(self.originals)
            for r in retro:
                assert [(a["action"], a["result"]) for a in json.loads(r["actions"])] == [
                    ("withhold", "done"),
                    ("review", "done"),
                    ("takedown", "done"),
                ]
            evidence = await conn.fetch("SELECT decision_id, cid FROM evidence")
            assert sorted(e["cid"] for e in evidence) == sorted(cid_of(b) for b in BODIES)
            assert {e["decision_id"] for e in evidence} == {r["id"] for r in retro}
            audit = await conn.fetchval("SELECT count(*) FROM audit WHERE action = 'takedown'")
            assert audit == len(BODIES)
        finally:
            await conn.close()
        assert sorted(t["subject"]["cid"] for t in pds.takedowns) == sorted(cid_of(b) for b in BODIES)
        events = [
            json.loads(r.body) for r in hooks.got if verify(HOOK_SECRET, r.headers[SIGNATURE_HEADER], r.body)
        ]
        retro_events = [e for e in events if e["type"] == "retro.rejected"]
        assert sorted(e["data"]["origin"] for e in retro_events) == sorted(self.originals)


@contextlib.asynccontextmanager
async def originals(tmp_path: Path, dsn: str, hooks: Receiver) -> AsyncIterator[tuple[AdminPds, Setup]]:
    """The PDS stand-in serving, and the decisions a bank addition will make hunts re-judge stored."""
    pds = AdminPds(BODIES)
    async with serving(pds.app()) as url:
        setup = Setup(tmp_path, dsn, url, hooks)
        await setup.store_forwarded()
        yield pds, setup


@pytest.fixture
async def hooks() -> AsyncIterator[Receiver]:
    async with receiver() as rec:
        yield rec


async def test_two_replicas_hunt_once(
    tmp_path: Path, fresh_dsn: str, hooks: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gate.scan")
    async with originals(tmp_path, fresh_dsn, hooks) as (pds, setup):
        async with setup.replica(1), setup.replica(2):
            setup.ban_them()
            # Both replicas reload within GATE_RELOAD_INTERVAL; the first hunt's review waits on getBlob.
            await until("a hunt's first getBlob", lambda: len(pds.asked) >= 1)
            await asyncio.sleep(1.0)  # time enough for the other replica's hunt to get as far, if it may
            pds.go.set()
            await until("both replicas' hunts", lambda: len(hunts_done(caplog)) >= 2)
            await until("the webhooks", lambda: len(hooks.on("/hook")) >= len(BODIES))
            await asyncio.sleep(0.5)  # a duplicate's row and webhook would be here by now
        await setup.assert_rejudged_once(pds, hooks)
        assert sorted(pds.asked) == sorted(cid_of(b) for b in BODIES)  # each blob fetched once
    tallies = sorted((t["judged"], t["already_rejudged"]) for t in hunts_done(caplog))
    assert tallies == [(0, 2), (2, 0)]  # the second hunt found every hit re-judged by the first


async def test_scan_retro_waits_for_the_hunt_under_way(
    tmp_path: Path, fresh_dsn: str, hooks: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gate.scan")
    async with originals(tmp_path, fresh_dsn, hooks) as (pds, setup):
        async with setup.replica(1):
            setup.ban_them()
            await until("the gate's hunt's first getBlob", lambda: len(pds.asked) >= 1)
            cli = asyncio.create_task(asyncio.to_thread(scan_retro, setup.cli_env))
            waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"

            async def cli_waits() -> bool:
                assert not cli.done(), cli.result().stderr
                return await count(fresh_dsn, waiting) >= 1

            await until("the CLI waiting for the hunt's lock", cli_waits, timeout=60)
            assert len(pds.asked) == 1
            pds.go.set()
            done = await cli
            assert done.returncode == 0, done.stderr
            local = json.loads(done.stdout)["local"]
            assert (local["hits"], local["judged"], local["already_rejudged"]) == (2, 0, 2)
            await until("the gate's hunt", lambda: len(hunts_done(caplog)) >= 1)
            await until("the webhooks", lambda: len(hooks.on("/hook")) >= len(BODIES))
        await setup.assert_rejudged_once(pds, hooks)


async def test_a_hunt_killed_midway_lets_the_next_one_run(
    tmp_path: Path, fresh_dsn: str, hooks: Receiver
) -> None:
    """The lock ends with its holder: ``scan retro`` killed (SIGKILL, nothing cleaned up) while it holds
    the lock leaves none behind, and the next hunt re-judges what the dead one had not recorded."""
    async with originals(tmp_path, fresh_dsn, hooks) as (pds, setup):
        setup.ban_them()
        env = process_env(setup.cli_env)
        command = [sys.executable, "-m", "gate", "scan", "retro", "--json"]
        held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        dead = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await until("the first hunt's getBlob", lambda: len(pds.asked) >= 1, timeout=60)
            assert await count(fresh_dsn, held) == 1
        finally:
            dead.kill()
            await asyncio.to_thread(dead.wait)

        async def let_go() -> bool:
            return await count(fresh_dsn, held) == 0

        await until("the dead hunt's lock let go", let_go, timeout=10)
        pds.go.set()
        done = await asyncio.to_thread(scan_retro, setup.cli_env)
        assert done.returncode == 0, done.stderr
        local = json.loads(done.stdout)["local"]
        assert (local["hits"], local["judged"], local["already_rejudged"]) == (2, 2, 0)
        await until("the webhooks", lambda: len(hooks.on("/hook")) >= len(BODIES))
        await setup.assert_rejudged_once(pds, hooks)
