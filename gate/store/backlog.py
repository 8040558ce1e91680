"""What waits for people: evidence items by state and how long the oldest has waited for review (read
by /metrics at scrape time: ``gate.admin.health``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gate.store.item import EvidenceState

if TYPE_CHECKING:
    from gate.store.pool import Pool


@dataclass(frozen=True, slots=True)
class Backlog:
    items: dict[EvidenceState, int]  # items whose sealed bytes are kept, by state (0 when none)
    oldest_held_seconds: float  # age of the oldest item held for review (0 when none is)


async def backlog(db: Pool) -> Backlog:
    rows = await db.fetch(
        "SELECT state, count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age"
        " FROM evidence WHERE ciphertext IS NOT NULL GROUP BY state"
    )
    found = {EvidenceState(r["state"]): (int(r["n"]), float(r["age"])) for r in rows}
    held = found.get(EvidenceState.HELD, (0, 0.0))[1]
    return Backlog({s: found.get(s, (0, 0.0))[0] for s in EvidenceState}, max(0.0, held))
