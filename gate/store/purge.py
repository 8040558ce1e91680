"""Purging expired evidence: the sealed bytes (and the wrapped data key) of every item past its deadline
and not on legal hold are deleted, each purge audited in the same transaction. The evidence row keeps
its hashes, state and history; the decision row in ``decisions`` is never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gate import metrics
from gate.store.audit import GATE_ACTOR, record_audit
from gate.watch import every

if TYPE_CHECKING:
    from gate.store.pool import Connection, Pool

log = logging.getLogger("gate.evidence")


@dataclass(frozen=True, slots=True)
class Purged:
    decision_id: str
    state: str
    sha256: str
    expired_at: datetime


async def purge(db: Pool, now: datetime | None = None, actor: str = GATE_ACTOR) -> list[Purged]:
    """Purge what expired by ``now`` (default: now), audited as ``purge`` by ``actor``."""
    at = now or datetime.now(UTC)
    async with db.transaction() as conn:
        purged = await purge_expired(conn, at)
        for p in purged:
            detail = {"state": p.state, "expired_at": p.expired_at.isoformat()}
            await record_audit(conn, actor, "purge", p.decision_id, detail)
    return purged


async def purge_periodically(db: Pool, interval: float) -> None:
    """Purge expired evidence now and then every ``interval`` seconds, until cancelled."""

    async def step() -> None:
        try:
            purged = await purge(db)
            metrics.EVIDENCE_PURGED.inc(len(purged))
            if purged:
                log.info("evidence purge: %d expired item(s) deleted", len(purged))
        except Exception as exc:  # the next round retries; a purge must never stop the gate
            log.error("evidence purge failed: %s: %s", type(exc).__name__, exc)

    await every(interval, step, what="evidence purge", now=True)


async def purge_expired(conn: Connection, now: datetime) -> list[Purged]:
    """Delete the sealed bytes of every item past its deadline and not on legal hold; return them."""
    rows = await conn.fetch(
        "UPDATE evidence SET key_id = NULL, wrapped_key = NULL, nonce = NULL, ciphertext = NULL,"
        " purged_at = $1, purge_reason = 'expired'"
        " WHERE ciphertext IS NOT NULL AND NOT legal_hold AND expires_at IS NOT NULL AND expires_at <= $1"
        " RETURNING decision_id, state, sha256, expires_at",
        now,
    )
    purged = [Purged(str(r["decision_id"]), r["state"], r["sha256"], r["expires_at"]) for r in rows]
    for p in purged:  # retention working as configured: worth a line, not a warning
        log.info(
            "evidence purged: decision %s (%s, sha256 %s) expired %s",
            p.decision_id,
            p.state,
            p.sha256,
            p.expired_at.isoformat(),
        )
    return purged
