"""On a real Postgres: what a scan writes (decision rows with their actions, ``scan_blobs``, ``scan_repos``)
and what getBlob withholds because of it — a blocked blob a scan only recorded is not withheld, one whose
``withhold`` was done is."""

from __future__ import annotations

import hashlib

from gate.record import DecisionRecord, new_decision_id
from gate.scan.scanner import repo_uploader
from gate.scan.store import Outcome, ScanStore
from gate.store.blocked import blocked_sha256
from gate.store.pool import Pool
from gate.types import ActionTaken, Decision, DecisionSource, Hashes, ScanAction, Verdict
from tests.support.cids import cid_of

DID = "did:plc:abcdefghijklmnopqrstuvwx"


def record(
    body: bytes, verdict: Verdict, *actions: ActionTaken, source: DecisionSource = DecisionSource.BACKFILL
) -> DecisionRecord:
    h = Hashes(hashlib.sha256(body).hexdigest(), "0" * 32, "0" * 40, cid_of(body), len(body), "image/png")
    d = Decision(verdict, "r", "match", (), "v")
    return DecisionRecord(
        new_decision_id(), DecisionRecord.now(), source, None, repo_uploader(DID), None, h, d, verdict,
        actions=actions,
    )  # fmt: skip


async def test_scan_rows_and_what_they_withhold(pool: Pool) -> None:
    store = ScanStore(pool)
    await store.begin_repo(DID, "rev1")
    withheld = record(b"a", Verdict.REJECT, ActionTaken(ScanAction.WITHHOLD, "done"))
    shadowed = record(b"b", Verdict.REJECT, ActionTaken(ScanAction.WITHHOLD, "shadow"))
    recorded = record(b"c", Verdict.QUARANTINE)
    for r in (withheld, shadowed, recorded):
        assert r.hashes is not None
        await store.add(Outcome(DID, r.hashes.cid, record=r))
    await store.add(Outcome(DID, cid_of(b"d"), problem="corrupt", detail="the bytes do not match their CID"))
    # One the PDS would not serve now: recorded with what it said, yet not scanned (the next scan retries).
    await store.add(
        Outcome(DID, cid_of(b"x"), problem="unavailable", detail="HTTP 400 InvalidRequest: Blob not found")
    )
    await store.finish_repo(DID, advance=True)

    assert await blocked_sha256(pool) == {hashlib.sha256(b"a").hexdigest()}
    assert await store.done_cids(DID) == {cid_of(b) for b in (b"a", b"b", b"c", b"d")}
    [repo] = await pool.fetch("SELECT state, since_rev, blobs FROM scan_repos")
    assert (repo["state"], repo["since_rev"], repo["blobs"]) == ("done", "rev1", 5)
    [row] = await pool.fetch(
        "SELECT source, did, verified_how, actions::text FROM decisions WHERE cid = $1", cid_of(b"a")
    )
    assert (row["source"], row["did"], row["verified_how"]) == ("backfill", DID, "repo")
    assert row["actions"] == '[{"action": "withhold", "detail": null, "result": "done"}]'
    [problem] = await pool.fetch(
        "SELECT decision_id, problem, detail FROM scan_blobs WHERE cid = $1", cid_of(b"d")
    )
    assert (problem["decision_id"], problem["problem"]) == (None, "corrupt")
    [retried] = await pool.fetch("SELECT problem, detail FROM scan_blobs WHERE cid = $1", cid_of(b"x"))
    assert (retried["problem"], retried["detail"]) == (
        "unavailable",
        "HTTP 400 InvalidRequest: Blob not found",
    )

    # An upload's block verdict withholds as before; a later pass that must retry keeps the old rev.
    upload = record(b"e", Verdict.REJECT, source=DecisionSource.UPLOAD)
    await store.add(Outcome(DID, cid_of(b"e"), record=upload))
    await store.begin_repo(DID, "rev2")
    await store.finish_repo(DID, advance=False)
    assert hashlib.sha256(b"e").hexdigest() in await blocked_sha256(pool)
    assert (await store.states())[DID].since_rev == "rev1"
