"""Where a firehose stands: ``Progress`` (which sequence numbers are read, in flight, done) and
``WatchState`` (the durable cursor and the blobs already judged, in Postgres, migration 010) and
``Tally`` (the progress line).

Events are judged concurrently and finish out of order, so the cursor that may be saved is the
*watermark*: the last sequence number before the oldest event still in flight (or the last one read when
nothing is). A restart subscribes from it: every event after it is delivered again, none before it is
needed. Events delivered again are cheap: their blobs are in ``firehose_blobs`` and are not fetched.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gate.store.pool import Pool


class Progress:
    def __init__(self, start: int | None) -> None:
        self.last_read = start  # the highest sequence number taken from the stream
        self._in_flight: set[int] = set()

    def begin(self, seq: int) -> bool:
        """Take ``seq``; False when it was taken before (a reconnect delivers some events again)."""
        if self.last_read is not None and seq <= self.last_read:
            return False
        self.last_read = seq
        self._in_flight.add(seq)
        return True

    def finish(self, seq: int) -> None:
        self._in_flight.discard(seq)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def watermark(self) -> int | None:
        if self._in_flight:
            return min(self._in_flight) - 1
        return self.last_read


@dataclass(frozen=True, slots=True)
class Seen:
    decision_id: uuid.UUID
    verdict: str | None
    rule: str | None


class WatchState:
    def __init__(self, db: Pool, service: str) -> None:
        self.db = db
        self.service = service

    async def cursor(self) -> int | None:
        seq: int | None = await self.db.fetchval(
            "SELECT seq FROM firehose_cursors WHERE service = $1", self.service
        )
        return seq

    async def save_cursor(self, seq: int) -> None:
        await self.db.execute(
            "INSERT INTO firehose_cursors (service, seq) VALUES ($1, $2) ON CONFLICT (service) DO UPDATE"
            " SET seq = excluded.seq, updated_at = now()",
            self.service,
            seq,
        )

    async def reset(self) -> None:
        await self.db.execute("DELETE FROM firehose_cursors WHERE service = $1", self.service)

    async def seen(self, cid: str) -> Seen | None:
        row = await self.db.fetchrow(
            "SELECT decision_id, verdict, rule FROM firehose_blobs WHERE cid = $1", cid
        )
        return Seen(row["decision_id"], row["verdict"], row["rule"]) if row is not None else None

    async def mark_seen(
        self, cid: str, decision_id: str, verdict: str | None, rule: str | None, uri: str
    ) -> None:
        await self.db.execute(
            "INSERT INTO firehose_blobs (cid, decision_id, verdict, rule, first_uri) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (cid) DO NOTHING",
            cid,
            uuid.UUID(hex=decision_id),
            verdict,
            rule,
            uri,
        )


class Tally:
    """What the watcher has done, for its progress line: an operator tailing the log sees it read, judge
    and keep up (or fall behind) without a Prometheus. Totals since start, rates since the last line."""

    OUTCOMES = ("judged", "seen", "failed", "skipped")

    def __init__(self, service: str) -> None:
        self.service = service
        self.commits = 0
        self.blobs = dict.fromkeys(self.OUTCOMES, 0)
        self.lag = 0.0
        self._last_at = time.monotonic()
        self._last_commits = 0
        self._last_judged = 0

    def blob(self, outcome: str) -> None:
        self.blobs[outcome] += 1

    def line(self, progress: Progress, queued: int, queue_size: int, saved: int | None) -> str:
        now = time.monotonic()
        span = max(now - self._last_at, 1e-9)
        commits_rate = (self.commits - self._last_commits) / span
        judged_rate = (self.blobs["judged"] - self._last_judged) / span
        self._last_at, self._last_commits, self._last_judged = now, self.commits, self.blobs["judged"]
        blobs = ", ".join(f"{n} {outcome}" for outcome, n in self.blobs.items())
        return (
            f"firehose {self.service}: read to seq {progress.last_read}, cursor {saved}; "
            f"{self.commits} commits ({commits_rate:.1f}/s); blobs {blobs} ({judged_rate:.1f} judged/s); "
            f"queue {queued}/{queue_size}, {progress.in_flight} in flight; lag {self.lag:.1f} s"
        )
