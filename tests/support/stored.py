"""What the retro-hunt tests start from: decisions as the gate stores them, and counting what is stored."""

from __future__ import annotations

import hashlib

import asyncpg

from gate.record import DecisionRecord, new_decision_id
from gate.scan.scanner import repo_uploader
from gate.types import Decision, DecisionSource, Hashes, PdqHash, Verdict
from tests.support.cids import cid_of


def forwarded(body: bytes, did: str, pdq: str | None = None) -> DecisionRecord:
    """A stored decision that forwarded ``body`` (with PDQ ``pdq``, if given): what a bank addition or an
    HMA rebuild makes a retro-hunt re-judge."""
    h = Hashes(
        hashlib.sha256(body).hexdigest(), "0" * 32, "0" * 40, cid_of(body), len(body), "image/png",
        pdq=() if pdq is None else (PdqHash(pdq, 100),),
    )  # fmt: skip
    d = Decision(Verdict.FORWARD, "no_match", "no_match", (), "v")
    return DecisionRecord(
        new_decision_id(), DecisionRecord.now(), DecisionSource.UPLOAD, None, repo_uploader(did), None, h, d,
        Verdict.FORWARD,
    )  # fmt: skip


async def count(dsn: str, query: str) -> int:
    """``SELECT count(*) ...`` on a connection of its own."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()
