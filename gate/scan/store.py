"""Where a scan has got to, durably: ``scan_repos`` (per repo) and ``scan_blobs`` (per repo and CID), and the
decision rows of what it judged — written together, so a scan killed at any point resumes without reading
a recorded blob again and never leaves a blob marked scanned without its decision.

Rows go straight to Postgres in small batches (one transaction each), not through the decision log's
queue and spool: the spool belongs to the serving gate's process, and a scan that cannot write should stop
and resume later rather than read on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from gate.record import DecisionRecord
from gate.store.pool import Pool
from gate.store.rows import INSERT_SQL, insert_args, record_to_row

# Problems that may pass (the PDS or a matcher failing now): recorded, yet tried again by the next scan.
RETRIED = frozenset({"unavailable", "matcher_error"})
BATCH = 64  # blobs per transaction
LINGER = 1.0  # seconds an outcome may wait for its batch: what a kill can cost a resume


@dataclass(frozen=True, slots=True)
class RepoState:
    state: str  # scanning | done | failed
    since_rev: str | None  # the rev the last finished pass covered


@dataclass(frozen=True, slots=True)
class Outcome:
    """One blob handled: judged (``record``), or not (``problem``, a bounded kind, and ``detail``)."""

    did: str
    cid: str
    record: DecisionRecord | None = None
    problem: str | None = None
    detail: str | None = None


class ScanStore:
    def __init__(self, db: Pool) -> None:
        self.db = db
        self._batch: list[Outcome] = []
        self._lock = asyncio.Lock()
        self._flushed = time.monotonic()

    async def states(self) -> dict[str, RepoState]:
        rows = await self.db.fetch("SELECT did, state, since_rev FROM scan_repos")
        return {r["did"]: RepoState(r["state"], r["since_rev"]) for r in rows}

    async def done_cids(self, did: str) -> set[str]:
        """The CIDs of ``did`` a scan recorded (judged, or a problem that retrying cannot fix)."""
        rows = await self.db.fetch(
            "SELECT cid FROM scan_blobs WHERE did = $1 AND (problem IS NULL OR NOT problem = ANY($2::text[]))",
            did,
            sorted(RETRIED),
        )
        return {r["cid"] for r in rows}

    async def begin_repo(self, did: str, rev: str) -> None:
        await self.db.execute(
            "INSERT INTO scan_repos (did, state, pass_rev) VALUES ($1, 'scanning', $2)"
            " ON CONFLICT (did) DO UPDATE SET state = 'scanning', pass_rev = $2, error = NULL, updated_at = now()",
            did,
            rev,
        )

    async def finish_repo(self, did: str, *, advance: bool) -> None:
        """Done. ``advance``: the next scan lists only blobs of newer records (False while some blob
        must be retried: its record would not be listed again)."""
        await self.flush()
        await self.db.execute(
            "UPDATE scan_repos SET state = 'done', updated_at = now(),"
            " since_rev = CASE WHEN $2 THEN pass_rev ELSE since_rev END WHERE did = $1",
            did,
            advance,
        )

    async def fail_repo(self, did: str, error: str) -> None:
        await self.flush()
        await self.db.execute(
            "INSERT INTO scan_repos (did, state, error) VALUES ($1, 'failed', $2)"
            " ON CONFLICT (did) DO UPDATE SET state = 'failed', error = $2, updated_at = now()",
            did,
            error,
        )

    async def problems(self, limit: int) -> dict[str, list[dict[str, str | None]]]:
        """What scans could not judge, newest first: blobs (kind and what was said) and whole repos."""
        blobs = await self.db.fetch(
            "SELECT did, cid, problem, detail, scanned_at FROM scan_blobs WHERE problem IS NOT NULL"
            " ORDER BY scanned_at DESC, did, cid LIMIT $1",
            limit,
        )
        repos = await self.db.fetch(
            "SELECT did, error, updated_at FROM scan_repos WHERE state = 'failed' ORDER BY updated_at DESC LIMIT $1",
            limit,
        )
        return {
            "blobs": [
                {
                    "did": r["did"],
                    "cid": r["cid"],
                    "problem": r["problem"],
                    "retried": "yes" if r["problem"] in RETRIED else "no",
                    "detail": r["detail"],
                    "at": r["scanned_at"].isoformat(),
                }
                for r in blobs
            ],
            "repos": [
                {"did": r["did"], "error": r["error"], "at": r["updated_at"].isoformat()} for r in repos
            ],
        }

    async def add(self, outcome: Outcome) -> None:
        self._batch.append(outcome)
        if len(self._batch) >= BATCH or time.monotonic() - self._flushed > LINGER:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            batch, self._batch = self._batch, []
            self._flushed = time.monotonic()
            if not batch:
                return
            records = [o.record for o in batch if o.record is not None]
            async with self.db.transaction() as conn:
                if records:
                    await conn.execute(INSERT_SQL, *insert_args([record_to_row(r) for r in records]))
                await conn.executemany(
                    "INSERT INTO scan_blobs (did, cid, decision_id, problem, detail) VALUES ($1, $2, $3::uuid, $4, $5)"
                    " ON CONFLICT (did, cid) DO UPDATE SET decision_id = EXCLUDED.decision_id,"
                    " problem = EXCLUDED.problem, detail = EXCLUDED.detail, scanned_at = now()",
                    [(o.did, o.cid, _uuid(o.record), o.problem, o.detail) for o in batch],
                )
                await conn.executemany(
                    "UPDATE scan_repos SET blobs = blobs + $2, updated_at = now() WHERE did = $1",
                    _per_repo(batch),
                )


def _uuid(record: DecisionRecord | None) -> str | None:
    return None if record is None else str(record_to_row(record)["id"])


def _per_repo(batch: list[Outcome]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for o in batch:
        counts[o.did] = counts.get(o.did, 0) + 1
    return list(counts.items())


async def insert_decision(db: Pool, record: DecisionRecord) -> None:
    """One decision row now (a retro-hunt outside the serving gate, which has no decision-log queue)."""
    await db.execute(INSERT_SQL, *insert_args([record_to_row(record)]))
