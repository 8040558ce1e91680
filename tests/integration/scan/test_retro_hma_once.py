"""The HMA retro-hunt pass runs once per HMA index change across every process on one Postgres, not once
per process: two gate replicas (``run_gate`` itself) that both see HMA's index rebuilt send HMA one pass
of lookups between them (counted at the fake HMA) and re-judge every hit once; a pass cut mid-way (its
replica stopped) or stopped by a failing HMA is not recorded as done, so the next process runs it; and a
rebuild that lands while a pass runs gets a pass of its own; ``upload-gate scan retro --hma`` stops at a
failed lookup and exits 1. Passes stopped and done are counted on /metrics, a stopped pass is tried
again after GATE_RETRO_HMA_RETRY_INTERVAL, and Postgres stopped under the index watch is logged once per
outage. The fake HMA is a real aiohttp server following ../shared/facts/hma-api.md, serialised like
HMA's one worker; Postgres is real.

(Over 300 lines: every case drives the same ``Setup`` of replicas, HMA and stored decisions.)"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gate.scan.store import insert_decision
from gate.serve import RunningGate
from gate.store.embedded import EmbeddedPostgres
from gate.store.pool import Pool
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import OTHER_PDQ
from tests.integration.conftest import write_config
from tests.support.boot import gate_env, in_process, process_env
from tests.support.policies import HMA_CLOSE, head
from tests.support.postgres import migrated, server_dir
from tests.support.scrape import sample
from tests.support.stored import count, forwarded
from tests.support.waiting import until

DID = "did:plc:hmaonceretrohmaonceretroh"
POLICY = head(hma_banks='["HMA_BLOCK"]') + HMA_CLOSE + '\n[scan]\nreject = ["withhold"]\nquarantine = []\n'
STORED = [hashlib.sha256(f"stored picture {n}".encode()).hexdigest() for n in range(4)]  # far apart
DONE = "retro-hunt (HMA) done: %s"
SKIPPED = "retro-hunt (HMA): HMA's PDQ index built_to %d was looked up again by another process"
STOPPED = "retro-hunt (HMA) for built_to %d stopped, not recorded as done"
RUNS = "upload_gate_retro_runs_total"
WAITING = "retro-hunt (HMA): waiting for Postgres to tell what HMA index is owed"


async def next_second(built_to: int) -> None:
    """Until a rebuild now gets a later built_to than ``built_to`` (it counts whole seconds)."""
    while int(time.time()) <= built_to:
        await asyncio.sleep(0.05)


def logged(caplog: pytest.LogCaptureFixture, start: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if isinstance(r.msg, str) and r.msg.startswith(start)]


class Setup:
    def __init__(self, tmp_path: Path, dsn: str, pds_url: str, hma: FakeHma) -> None:
        self.dsn, self.hma, self.tmp_path = dsn, hma, tmp_path
        policy_path, banks_dir = write_config(tmp_path, POLICY)
        self.env = {
            **gate_env(pds_url, dsn, policy_path, banks_dir, tmp_path / "var"),
            "GATE_HMA_URL": hma.url,
            "GATE_HMA_STATUS_INTERVAL": "0.1",
            "GATE_RETRO_HMA_RATE": "50",
            # A slow HMA, not a failing one: a lookup may queue behind one a stopped replica left in HMA.
            "GATE_HMA_TIMEOUT": "10",
            "GATE_HMA_DEADLINE": "10",
        }
        self.originals: dict[str, str] = {}  # decision id → its PDQ

    async def store_forwarded(self) -> None:
        pool = Pool(self.dsn)
        try:
            for n, pdq in enumerate(STORED):
                record = forwarded(f"picture {n}".encode(), DID, pdq)
                await insert_decision(pool, record)
                self.originals[record.id] = pdq
        finally:
            await pool.close()

    def replica(self, n: int) -> contextlib.AbstractAsyncContextManager[RunningGate]:
        return in_process({**self.env, "GATE_DATA_DIR": str(self.tmp_path / f"var{n}")})

    async def built_to(self) -> int:
        async with aiohttp.ClientSession() as s, s.get(self.hma.url + "/m/index/status") as r:
            return int((await r.json())["pdq"]["built_to"])

    async def recorded(self) -> tuple[int, bool] | None:
        """What ``retro_hma_index`` says the stored hashes were last looked up against."""
        conn = await asyncpg.connect(self.dsn)
        try:
            row = await conn.fetchrow(
                "SELECT built_to, looked_up FROM retro_hma_index WHERE signal_type = 'pdq'"
            )
        finally:
            await conn.close()
        return None if row is None else (int(row["built_to"]), bool(row["looked_up"]))

    async def started_from(self) -> int:
        """Wait until the first replica has recorded the index it started with (no pass for it)."""
        await until("the starting index recorded", self._has_start)
        start = await self.recorded()
        assert start is not None and start == (await self.built_to(), False)
        return start[0]

    async def _has_start(self) -> bool:
        return await self.recorded() is not None

    async def ban_stored(self) -> int:
        """HMA's index rebuilt once with every stored PDQ in HMA_BLOCK; its new built_to."""
        await next_second(await self.built_to())
        for pdq in STORED:  # one rebuild: no await in between
            self.hma.add_signal("HMA_BLOCK", "pdq", pdq)
        return await self.built_to()

    def stored_lookups(self) -> list[str]:
        """The PDQs of stored decisions HMA was asked about (uploads would be others)."""
        return [q["signal"] for q in self.hma.lookups if q.get("signal") in STORED]

    async def retro(self) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT origin, verdict, rule, notes FROM decisions WHERE source = 'retro'"
            )
        finally:
            await conn.close()
        return [dict(r) for r in rows]

    async def all_rejudged(self) -> bool:
        return len(await self.retro()) >= len(STORED)

    async def assert_rejudged_once(self, built_to: int) -> None:
        retro = await self.retro()
        assert sorted(str(r["origin"]).replace("-", "") for r in retro) == sorted(self.originals)
        for r in retro:
            assert (r["verdict"], r["rule"]) == ("reject", "hma-close")
            assert f"retro: HMA index built_to {built_to}" in r["notes"]
        assert await self.recorded() == (built_to, True)


async def runs(admin_url: str) -> Counter[str]:
    """``upload_gate_retro_runs_total`` of the HMA passes, by outcome, as the gate's /metrics says."""
    return Counter(
        {o: await sample(admin_url, RUNS, kind="hma", outcome=o) for o in ("done", "stopped", "failed")}
    )


def outcomes(caplog: pytest.LogCaptureFixture) -> int:
    """How many times a replica logged what it did about a rebuild: a pass done, or one skipped."""
    return len(logged(caplog, DONE)) + len(logged(caplog, SKIPPED))


@pytest.fixture
async def hma() -> AsyncIterator[FakeHma]:
    # One worker, 0.25 s a lookup: a pass over the four stored hashes takes a second, long enough for
    # the other replica to notice the same rebuild while it runs.
    async with FakeHma(latency=0.25, serialise=True) as fake:
        fake.add_bank("HMA_BLOCK")
        fake.add_signal("HMA_BLOCK", "pdq", OTHER_PDQ)
        yield fake


async def test_two_replicas_send_hma_one_pass_per_rebuild(
    tmp_path: Path, fresh_dsn: str, pds: str, hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gate.scan")
    setup = Setup(tmp_path, fresh_dsn, pds, hma)
    await setup.store_forwarded()
    async with setup.replica(1), setup.replica(2):
        await setup.started_from()
        await asyncio.sleep(0.5)  # both replicas have looked at HMA's index at least once
        built = await setup.ban_stored()
        await until("every hit re-judged", setup.all_rejudged)
        # Each replica says what it did about the rebuild: one looked the window up, one (or, without
        # the record, another pass) did not need to.
        await until("both replicas done with the rebuild", lambda: outcomes(caplog) >= 2)
        await asyncio.sleep(0.5)  # a second pass's lookups would be under way by now
        assert sorted(setup.stored_lookups()) == sorted(STORED)  # one pass: each stored PDQ once
        assert len(logged(caplog, DONE)) == 1
        assert len(logged(caplog, SKIPPED)) == 1
    await setup.assert_rejudged_once(built)


async def test_a_pass_cut_midway_is_run_by_the_next_process(
    tmp_path: Path, fresh_dsn: str, pds: str, hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    """Replica 1 stops mid-pass (its pass cancelled, its lock gone with its connection); replica 2,
    started meanwhile with the same rebuild to look up, waits for the lock and then runs the pass."""
    caplog.set_level(logging.INFO, logger="gate.scan")
    hma.latency = 1.5  # six seconds a pass: time to start the second replica and stop the first
    setup = Setup(tmp_path, fresh_dsn, pds, hma)
    await setup.store_forwarded()
    async with contextlib.AsyncExitStack() as first:
        await first.enter_async_context(setup.replica(1))
        start = await setup.started_from()
        built = await setup.ban_stored()
        await until("replica 1's pass under way", lambda: len(setup.stored_lookups()) >= 1)
        async with setup.replica(2):
            waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"

            async def second_waits() -> bool:
                return await count(fresh_dsn, waiting) >= 1

            await until("replica 2 waiting for replica 1's pass", second_waits)
            assert len(setup.stored_lookups()) < len(STORED)
            await first.aclose()  # replica 1 stops: its pass is cut
            assert await setup.recorded() == (start, False)  # the cut pass: not done
            await until("every hit re-judged", setup.all_rejudged)
            await until("replica 2's pass recorded", lambda: len(logged(caplog, DONE)) >= 1)
    await setup.assert_rejudged_once(built)
    assert len(logged(caplog, DONE)) == 1


async def test_a_pass_stopped_by_failing_lookups_is_not_done(
    tmp_path: Path, fresh_dsn: str, pds: str, hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    """HMA answering 500 to the pass's lookups: the pass stops at the first, re-judges nothing and is not
    recorded as done, and /metrics counts it stopped; once HMA answers, the next process to start runs it,
    counted done. (Both replicas run in this test's process, so they share its metrics: differences.)"""
    caplog.set_level(logging.INFO, logger="gate.scan")
    setup = Setup(tmp_path, fresh_dsn, pds, hma)
    await setup.store_forwarded()
    async with setup.replica(1) as first:
        start = await setup.started_from()
        before = await runs(first.admin_url)
        hma.fail = "http_500"
        built = await setup.ban_stored()
        await until("replica 1's pass stopped", lambda: len(logged(caplog, STOPPED)) >= 1)
        # It stopped at the first stored hash (asked again once: GATE_HMA_RETRIES), not the whole window.
        assert len(set(setup.stored_lookups())) == 1
        assert await setup.retro() == []
        assert await setup.recorded() == (start, False)
        assert await runs(first.admin_url) - before == Counter(stopped=1)
        hma.fail = None
        async with setup.replica(2) as second:
            await until("every hit re-judged", setup.all_rejudged)
            await until("the pass recorded", lambda: len(logged(caplog, DONE)) >= 1)
            assert await runs(second.admin_url) - before == Counter(stopped=1, done=1)
    await setup.assert_rejudged_once(built)


async def test_a_stopped_pass_is_tried_again_after_the_retry_interval(
    tmp_path: Path, fresh_dsn: str, pds: str, hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    """GATE_RETRO_HMA_RETRY_INTERVAL: the replica whose pass stopped tries the same index again after it,
    not at each look at HMA (every 0.1 s) meanwhile, each try counted stopped; once HMA answers, its next
    try is done."""
    caplog.set_level(logging.INFO, logger="gate.scan")
    setup = Setup(tmp_path, fresh_dsn, pds, hma)
    setup.env["GATE_RETRO_HMA_RETRY_INTERVAL"] = "1.5"
    await setup.store_forwarded()
    async with setup.replica(1) as gate:
        await setup.started_from()
        before = await runs(gate.admin_url)
        hma.fail = "http_500"
        built = await setup.ban_stored()
        await until("the first pass stopped", lambda: len(logged(caplog, STOPPED)) >= 1)
        first = time.monotonic()
        await until("the second pass stopped", lambda: len(logged(caplog, STOPPED)) >= 2)
        assert time.monotonic() - first > 1.0  # the interval, less the first pass's own length
        hma.fail = None
        await until("every hit re-judged", setup.all_rejudged)
        await until("the pass recorded", lambda: len(logged(caplog, DONE)) >= 1)
        stopped = len(logged(caplog, STOPPED))
        assert await runs(gate.admin_url) - before == Counter(stopped=stopped, done=1)
    await setup.assert_rejudged_once(built)


async def test_postgres_stopped_under_the_index_watch_is_said_once_per_outage(
    tmp_path: Path, pds: str, hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    """Postgres really stopped (pg_ctl, twice) under a replica that looks at HMA's index every 0.1 s: each
    look finds Postgres refusing to say what is owed, and the replica says so once per outage, not once a
    look. A bank gaining an entry meanwhile is a retro-hunt that fails, counted on /metrics; the index
    rebuilt during the first outage is looked up once Postgres answers again."""
    caplog.set_level(logging.INFO, logger="gate.scan")
    with server_dir() as data:
        server = EmbeddedPostgres(data)
        dsn = await asyncio.to_thread(server.start)
        try:
            await migrated(dsn)
            setup = Setup(tmp_path, dsn, pds, hma)
            await setup.store_forwarded()
            async with setup.replica(1) as gate:
                await setup.started_from()
                failed = await sample(gate.admin_url, RUNS, kind="bank", outcome="failed")
                await asyncio.to_thread(server.halt)
                await until("the outage said", lambda: len(logged(caplog, WAITING)) >= 1)
                built = await setup.ban_stored()  # noticed, but what is owed is in Postgres
                (tmp_path / "banks" / "blocklist.csv").write_text(f"sha256,{'ab' * 32},added\n")

                async def hunt_failed() -> bool:
                    return await sample(gate.admin_url, RUNS, kind="bank", outcome="failed") == failed + 1

                await until("the bank's retro-hunt failed", hunt_failed)
                await asyncio.sleep(1.0)  # ten more looks at HMA's index
                assert len(logged(caplog, WAITING)) == 1
                assert logged(caplog, DONE) == []
                await asyncio.to_thread(server.resume)
                await until("the owed pass done", lambda: len(logged(caplog, DONE)) >= 1)
                await setup.assert_rejudged_once(built)

                await asyncio.to_thread(server.halt)  # a second outage is said again, once
                await until("the second outage said", lambda: len(logged(caplog, WAITING)) >= 2)
                await asyncio.sleep(1.0)
                assert len(logged(caplog, WAITING)) == 2
                await asyncio.to_thread(server.resume)
        finally:
            await asyncio.to_thread(server.stop)


async def test_a_rebuild_during_a_pass_gets_a_pass_of_its_own(
    tmp_path: Path, fresh_dsn: str, pds: str, hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    """HMA's index moves on while a pass runs: the pass is recorded for the index it started with, and
    the newer index is looked up again after it (its first lookups never saw the newer one)."""
    caplog.set_level(logging.INFO, logger="gate.scan")
    hma.latency = 0.6  # 2.4 s a pass: a rebuild a second later lands in the middle
    setup = Setup(tmp_path, fresh_dsn, pds, hma)
    await setup.store_forwarded()
    async with setup.replica(1):
        await setup.started_from()
        first = await setup.ban_stored()
        await until("the pass under way", lambda: len(setup.stored_lookups()) >= 1)
        await next_second(first)
        hma.add_signal("HMA_BLOCK", "pdq", hashlib.sha256(b"banned later").hexdigest())
        second = await setup.built_to()
        await until("the pass for each index", lambda: len(logged(caplog, DONE)) >= 2)
        assert await setup.recorded() == (second, True)
    assert sorted(setup.stored_lookups()) == sorted(STORED * 2)  # once per index
    retro = await setup.retro()  # the hits of the first pass; the second found them re-judged
    assert sorted(str(r["origin"]).replace("-", "") for r in retro) == sorted(setup.originals)
    assert all(f"retro: HMA index built_to {first}" in r["notes"] for r in retro)


async def test_scan_retro_hma_stops_at_a_failed_lookup(
    tmp_path: Path, fresh_dsn: str, pds: str, hma: FakeHma
) -> None:
    """``upload-gate scan retro --hma`` with HMA answering 500: it stops at the first lookup, says so and
    exits 1, instead of reporting a window with no hits; an on-demand pass records no index as done."""
    setup = Setup(tmp_path, fresh_dsn, pds, hma)
    await setup.store_forwarded()
    hma.fail = "http_500"
    command = [sys.executable, "-m", "gate", "scan", "retro", "--hma", "--json"]
    env = process_env({**setup.env, "GATE_DATA_DIR": str(tmp_path / "cli")})
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)["hma"]
    assert summary["stopped"].startswith("matcher_error: hma http_5xx"), summary
    assert (summary["hits"], summary["judged"]) == (0, 0)
    assert "upload-gate scan retro: the HMA pass stopped: matcher_error" in done.stderr
    assert len(set(setup.stored_lookups())) == 1
    assert await setup.recorded() is None
