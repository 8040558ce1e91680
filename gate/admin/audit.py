"""``AuditLog``: who did what to which held item, when — one ``audit`` row per access or decision.

Every list, preview, reveal and decision on the admin listener is written *before* the answer goes
out; when the row cannot be written the access is refused (an unrecorded look at evidence is worse than
no look). Rows are only ever inserted.
"""

from __future__ import annotations

import json
from typing import Any

from gate.quarantine.item import AuditEntry, audit_from_row

__all__ = ["GATE_ACTOR", "AuditEntry", "AuditLog"]

# The gate itself, when it acts without a person (automatic actions, purges).
GATE_ACTOR = "gate"


class AuditLog:
    def __init__(self, pool: Any) -> None:
        self._pool = pool  # an asyncpg pool (or anything with execute/fetch)

    async def record(
        self,
        actor: str,
        action: str,
        subject: str | None = None,
        detail: dict[str, Any] | None = None,
        *,
        conn: Any = None,
    ) -> None:
        """Insert one row (on ``conn`` when given, so it commits with the action it records)."""
        target = conn if conn is not None else self._pool
        await target.execute(
            "INSERT INTO audit (actor, action, subject, detail) VALUES ($1, $2, $3, $4::jsonb)",
            actor,
            action,
            subject,
            json.dumps(detail or {}, sort_keys=True),
        )

    async def entries(self, *, subject: str | None = None, limit: int = 200) -> list[AuditEntry]:
        rows = await self._pool.fetch(
            "SELECT id, at, actor, action, subject, detail FROM audit"
            " WHERE ($1::text IS NULL OR subject = $1) ORDER BY id DESC LIMIT $2",
            subject,
            limit,
        )
        return [audit_from_row(r) for r in rows]
