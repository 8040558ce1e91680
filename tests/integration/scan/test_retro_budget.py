"""A retro-hunt's review fetches its blob from the PDS under GATE_MEMORY_BUDGET_BYTES: while the budget
is full (an upload in flight), the fetch waits holding nothing, then holds its blob's whole peak until the
evidence is written; a blob whose peak is over the whole budget is a ``too_large`` fetch, recorded as a
failed review. The PDS is a real aiohttp app on a real port; judging, sealing and recording are the
gate's own, on a real Postgres."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import asyncpg

from gate.proxy.budget import Reservation, peak
from gate.record import DecisionRecord
from gate.scan.act import ScanActor
from gate.scan.bank_diff import added
from gate.scan.retro import EPOCH, RetroHunt
from gate.scan.store import insert_decision
from tests.integration.conftest import POLICY, write_config
from tests.support.boot import gate_env
from tests.support.cids import cid_of
from tests.support.held_blobs import HeldBlobs, budgeted
from tests.support.serving import serving
from tests.support.stored import forwarded
from tests.support.waiting import until

DID = "did:plc:budgetretro0000000000000"
SMALL = [bytes([n]) * (400 * 1024) for n in (1, 2)]  # each one's peak fits the budget, not beside 1 MB more
HUGE = b"\4" * (700 * 1024)  # under the 1 MiB upload limit, but its peak is over the 2 MiB budget
SCAN = '\n[scan]\nreject = ["review"]\nquarantine = []\n'


async def test_a_retro_review_fetches_under_the_budget_and_an_oversized_peak_fails_the_review(
    tmp_path: Path, fresh_dsn: str
) -> None:
    blobs = [*SMALL, HUGE]
    api = HeldBlobs(blobs)
    bank = "\n".join(f"sha256,{hashlib.sha256(b).hexdigest()},reported" for b in blobs)
    async with serving(api.app()) as url:
        config = write_config(tmp_path, POLICY + SCAN, {"blocklist": bank})
        env = gate_env(url, fresh_dsn, *config, tmp_path / "var")
        async with budgeted(env, url) as (parts, sync, budget, water):
            for body in blobs:
                await insert_decision(parts.pool, forwarded(body, DID))

            async def record(r: DecisionRecord) -> None:
                await insert_decision(parts.pool, r)

            actor = ScanActor(parts.evidence.vault, None, "gate:retro")
            hunt = RetroHunt(parts.pool, parts.judge, actor, record, blobs=sync, budget=budget)
            upload = Reservation(
                budget
            )  # an upload in flight: the first review's peak does not fit beside it
            upload.grow_to(1 << 20)
            run = asyncio.create_task(hunt.run(added(None, parts.banks.banks), EPOCH))
            await until("the review's getBlob", lambda: len(api.asked) == 1)
            api.go.set()  # the body is on its way; the hunt still may not read it
            await asyncio.sleep(0.3)
            assert budget.used == 1 << 20 and not run.done() and len(api.asked) == 1
            upload.release()
            tally = await asyncio.wait_for(run, 30)
        assert budget.used == 0 and peak(len(SMALL[0])) <= water.highest <= budget.limit
        assert (tally.hits, tally.judged, dict(tally.verdicts)) == (3, 3, {"reject": 3})
        assert tally.actions == {"review:done": 2, "review:failed": 1}
    conn = await asyncpg.connect(fresh_dsn)
    try:
        rows = await conn.fetch("SELECT cid, actions FROM decisions WHERE source = 'retro'")
        actions = {r["cid"]: json.loads(r["actions"]) for r in rows}
        assert {c: [a["result"] for a in acts] for c, acts in actions.items()} == {
            **{cid_of(b): ["done"] for b in SMALL},
            cid_of(HUGE): ["failed"],
        }
        [failed] = actions[cid_of(HUGE)]
        assert "too_large" in failed["detail"] and "GATE_MEMORY_BUDGET_BYTES" in failed["detail"]
        kept = await conn.fetch("SELECT cid FROM evidence")
        assert sorted(r["cid"] for r in kept) == sorted(cid_of(b) for b in SMALL)
    finally:
        await conn.close()
