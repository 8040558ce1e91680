"""On a real Postgres: retro-hunts and back-tests read the stored decisions page by page, each once, in
order, even when a page ends inside a run of decisions with one timestamp."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from gate.record import DecisionRecord, new_decision_id
from gate.scan.scanner import repo_uploader
from gate.scan.store import insert_decision
from gate.scan.stored import STORED, each_decision
from gate.store.pool import Pool
from gate.types import Decision, DecisionSource, Hashes, Verdict
from tests.support.cids import cid_of


def record(body: bytes, verdict: Verdict, at: datetime, source: DecisionSource) -> DecisionRecord:
    h = Hashes(hashlib.sha256(body).hexdigest(), "0" * 32, "0" * 40, cid_of(body), len(body), "image/png")
    d = Decision(verdict, "r", "no_match", (), "v")
    return DecisionRecord(
        new_decision_id(), at, source, None, repo_uploader("did:plc:paging"), None, h, d, verdict
    )


async def test_every_stored_decision_once_in_order_across_pages(pool: Pool) -> None:
    first = DecisionRecord.now() - timedelta(hours=1)
    then = first + timedelta(seconds=1)
    # Seven stored decisions, five of them at one instant (pages of two end inside that run), and two
    # that are not stored: a rejected one and a retro decision.
    stored = [record(bytes([i]), Verdict.FORWARD, first, DecisionSource.UPLOAD) for i in range(5)]
    stored += [record(bytes([i]), Verdict.FORWARD, then, DecisionSource.BACKFILL) for i in (5, 6)]
    others = [
        record(b"r", Verdict.REJECT, first, DecisionSource.UPLOAD),
        record(b"t", Verdict.FORWARD, first, DecisionSource.RETRO),
    ]
    for r in [*others, *reversed(stored)]:
        await insert_decision(pool, r)

    seen = [row async for row in each_decision(pool, STORED, first - timedelta(minutes=1), 2)]

    assert [row["id"].hex for row in seen] == [r.id for r in sorted(stored, key=lambda r: (r.time, r.id))]
    assert [row async for row in each_decision(pool, STORED, then + timedelta(seconds=1), 2)] == []
