"""``upload-gate scan`` holds its blobs under GATE_MEMORY_BUDGET_BYTES: a worker waits, holding nothing,
until its blob's whole peak fits (a wait that is not counted against the PDS's deadline); a blob whose
peak is over the whole budget is a recorded problem. The
PDS is a real aiohttp app on a real port serving the sync API; judging and recording are the gate's own,
on a real Postgres."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from yarl import URL

from gate.blob_fetch import BlobUnavailable, PdsSync
from gate.proxy.budget import Admission, MemoryBudget, Reservation, peak
from gate.scan.act import ScanActor
from gate.scan.progress import Tally
from gate.scan.scanner import Scanner, ScanOptions
from gate.scan.store import ScanStore
from tests.integration.conftest import write_config
from tests.support.boot import gate_env
from tests.support.cids import cid_of
from tests.support.held_blobs import HeldBlobs, budgeted
from tests.support.serving import serving
from tests.support.waiting import until

DID = "did:plc:budgetscan000000000000000"
SMALL = [bytes([n]) * (400 * 1024) for n in (1, 2, 3)]  # each one's peak fits the budget, two do not
HUGE = b"\4" * (700 * 1024)  # under the 1 MiB upload limit, but its peak is over the 2 MiB budget


class SyncApi(HeldBlobs):
    """listRepos and listBlobs of one repo beside the held getBlob: a scan worker learns a blob's size,
    and then either holds it or waits."""

    async def list_repos(self, request: web.Request) -> web.Response:
        return web.json_response({"repos": [{"did": DID, "rev": "rev1", "active": True}]})

    async def list_blobs(self, request: web.Request) -> web.Response:
        return web.json_response({"cids": list(self.blobs)})

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/xrpc/com.atproto.sync.listRepos", self.list_repos)
        app.router.add_get("/xrpc/com.atproto.sync.listBlobs", self.list_blobs)
        return app


async def test_scan_workers_wait_for_room_in_the_budget_and_an_oversized_peak_is_a_problem(
    tmp_path: Path, fresh_dsn: str
) -> None:
    api = SyncApi([*SMALL, HUGE])
    async with serving(api.app()) as url:
        env = gate_env(url, fresh_dsn, *write_config(tmp_path), tmp_path / "var")
        async with budgeted(env, url) as (parts, sync, budget, water):
            tally = Tally()
            scanner = Scanner(
                parts.judge, sync, sync, ScanStore(parts.pool), ScanActor(None, None, "gate:scan"), tally,
                ScanOptions(concurrency=3, records=False), budget=budget,
            )  # fmt: skip
            run = asyncio.create_task(scanner.run())
            one = peak(len(SMALL[0]))
            # Three workers have asked and know their sizes; one holds its peak, the others wait for it.
            await until(
                "three getBlob calls, one blob held", lambda: len(api.asked) >= 3 and budget.used == one
            )
            await asyncio.sleep(0.2)
            assert budget.used == one and not run.done()
            api.go.set()
            await asyncio.wait_for(run, 30)
        assert budget.used == 0 and water.highest <= budget.limit
        assert tally.blobs_read == 3 and dict(tally.problems) == {"too_large": 1}
    conn = await asyncpg.connect(fresh_dsn)
    try:
        rows = await conn.fetch("SELECT cid FROM decisions WHERE source = 'backfill'")
        assert sorted(r["cid"] for r in rows) == sorted(cid_of(b) for b in SMALL)
        [problem] = await conn.fetch("SELECT cid, problem, detail FROM scan_blobs WHERE problem IS NOT NULL")
        assert (problem["cid"], problem["problem"]) == (cid_of(HUGE), "too_large")
        assert "GATE_MEMORY_BUDGET_BYTES" in problem["detail"]
    finally:
        await conn.close()


async def test_waiting_for_room_is_not_the_pds_time() -> None:
    """PdsSync's deadline (the scan's and the retro-hunt's getBlob) bounds the PDS — its headers, its
    body — not a blob's wait for room in the budget: a blob queued behind a larger one for longer than the
    deadline is still read, while a PDS that sends its headers and then stalls on the body still fails
    as ``unavailable``."""
    data = SMALL[0]
    api = HeldBlobs([data])
    budget = MemoryBudget(2 << 20)
    async with serving(api.app()) as url, PdsSync(URL(url), max_bytes=1 << 20, timeout=0.5) as sync:
        larger = Reservation(budget)  # a larger blob ahead, held for twice the deadline
        larger.grow_to(budget.limit)

        def larger_done() -> None:
            larger.release()
            api.go.set()  # the body goes out as it is read (a large one is held so by TCP's window)

        asyncio.get_running_loop().call_later(1.0, larger_done)
        held = Admission(budget)
        started = time.monotonic()
        try:
            got = await sync.get_blob(
                DID, cid_of(data), held.blob(lambda why: BlobUnavailable("too_large", why))
            )
        finally:
            held.release()
        assert got == data and time.monotonic() - started >= 1.0 and budget.used == 0

        api.go.clear()  # the PDS sends its headers, then nothing for longer than the deadline
        started = time.monotonic()
        with pytest.raises(BlobUnavailable) as failed:
            await sync.get_blob(DID, cid_of(data))
        assert failed.value.kind == "unavailable" and "TimeoutError" in failed.value.detail
        assert 0.5 <= time.monotonic() - started < 5
        api.go.set()
