"""The audit trail: who did what to which item, when — one ``audit`` row per access or decision.

Every list, preview, reveal and decision on the review site, every token change, release and takedown
writes its row here, in the same transaction as the change it records where there is one (pass that
transaction's connection), so nothing happens unrecorded. An access whose row cannot be written is
refused: an unrecorded look at evidence is worse than no look. Rows are only ever inserted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from gate.store.item import json_value

if TYPE_CHECKING:
    from gate.store.pool import Connection, Pool


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
        }


def audit_from_row(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        row["id"], row["at"], row["actor"], row["action"], row["subject"], json_value(row["detail"])
    )


# The gate itself, when it acts without a person (automatic actions, purges).
GATE_ACTOR = "gate"


async def record_audit(
    conn: Connection,
    actor: str,
    action: str,
    subject: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """The one INSERT into ``audit``, on the caller's connection (so it commits with what it records)."""
    await conn.execute(
        "INSERT INTO audit (actor, action, subject, detail) VALUES ($1, $2, $3, $4::jsonb)",
        actor,
        action,
        subject,
        json.dumps(detail or {}, sort_keys=True),
    )


class Audit:
    """The ``audit`` table on the process's pool, for accesses that change nothing else."""

    def __init__(self, db: Pool) -> None:
        self._db = db

    async def record(
        self, actor: str, action: str, subject: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        async with self._db.transaction() as conn:
            await record_audit(conn, actor, action, subject, detail)

    async def trail(self, subject: str) -> list[AuditEntry]:
        """Every row about ``subject``, oldest first."""
        rows = await self._db.fetch("SELECT * FROM audit WHERE subject = $1 ORDER BY at, id", subject)
        return [audit_from_row(r) for r in rows]
