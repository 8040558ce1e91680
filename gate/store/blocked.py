"""Which blobs the gate blocked: what getBlob withholds (``gate.quarantine.withheld``) reads from here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gate.store.pool import Pool


async def blocked_sha256(db: Pool) -> set[str]:
    """SHA-256 of every upload the gate rejected, quarantined or confirmed, less released ones; of blobs
    a scan or retro-hunt judged, those its ``[scan]`` choices withheld (a "record only" scan withholds
    nothing)."""
    rows = await db.fetch(
        "(SELECT sha256 FROM decisions WHERE verdict IN ('reject', 'quarantine') AND sha256 IS NOT NULL"
        " AND (source NOT IN ('backfill', 'retro')"
        ' OR actions @> \'[{"action": "withhold", "result": "done"}]\')'
        " UNION SELECT sha256 FROM evidence WHERE state <> 'released')"
        " EXCEPT (SELECT sha256 FROM evidence WHERE state = 'released'"
        " EXCEPT SELECT sha256 FROM evidence WHERE state IN ('confirmed', 'reported'))"
    )
    return {r["sha256"] for r in rows}
