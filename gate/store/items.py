"""``Items``: the evidence items as reviewers see them — listed, read (metadata only, never bytes), and
moved through their states (``gate.store.transitions``), each change audited in its own transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gate.store.audit import record_audit
from gate.store.item import ITEM_COLUMNS, SELECT_ITEM, EvidenceItem, EvidenceState, item_from_row
from gate.store.retention import Retention
from gate.store.transitions import EvidenceNotFound, change_hold, change_state
from gate.store.vault import item_uuid

if TYPE_CHECKING:
    from gate.store.pool import Pool


class Items:
    def __init__(self, db: Pool) -> None:
        self.db = db

    async def list_items(
        self,
        state: EvidenceState | None = None,
        *,
        limit: int = 100,
        before: datetime | None = None,
        with_bytes_only: bool = False,
    ) -> list[EvidenceItem]:
        """Newest first; ``before`` pages on created_at."""
        rows = await self.db.fetch(
            f"SELECT {ITEM_COLUMNS} FROM evidence WHERE ($1::text IS NULL OR state = $1)"  # noqa: S608
            " AND ($2::timestamptz IS NULL OR created_at < $2) AND (NOT $3 OR ciphertext IS NOT NULL)"
            " ORDER BY created_at DESC, decision_id DESC LIMIT $4",
            state.value if state else None,
            before,
            with_bytes_only,
            limit,
        )
        return [item_from_row(r) for r in rows]

    async def get(self, decision_id: str) -> EvidenceItem | None:
        try:
            key = item_uuid(decision_id)
        except EvidenceNotFound:
            return None
        row = await self.db.fetchrow(SELECT_ITEM, key)
        return item_from_row(row) if row is not None else None

    async def _change(
        self, decision_id: str, target: EvidenceState, actor: str, retention: Retention, **extra: Any
    ) -> EvidenceItem:
        key = item_uuid(decision_id)
        async with self.db.transaction() as conn:
            item = await change_state(conn, key, target, actor, datetime.now(UTC), retention, **extra)
            detail = {k: v for k, v in extra.items() if v is not None}
            await record_audit(conn, actor, target.value, str(key), detail)
        return item

    async def release(self, decision_id: str, actor: str) -> EvidenceItem:
        """Deletes the bytes at once. Then call ``withheld.discard(item.sha256)`` so getBlob serves the
        blob again now (else the next refresh does)."""
        return await self._change(decision_id, EvidenceState.RELEASED, actor, Retention())

    async def confirm(self, decision_id: str, actor: str) -> EvidenceItem:
        return await self._change(decision_id, EvidenceState.CONFIRMED, actor, Retention())

    async def mark_reported(
        self, decision_id: str, actor: str, report_id: str, retention: Retention | None = None
    ) -> EvidenceItem:
        return await self._change(
            decision_id, EvidenceState.REPORTED, actor, retention or Retention(), report_id=report_id
        )

    async def set_legal_hold(
        self, decision_id: str, actor: str, on: bool, reason: str | None = None
    ) -> EvidenceItem:
        """Place (``on``, ``reason`` required: the matter) or lift a legal hold; audited as
        ``legal_hold`` / ``legal_hold_lifted`` in the same transaction."""
        key = item_uuid(decision_id)
        async with self.db.transaction() as conn:
            item, detail = await change_hold(conn, key, on, actor, datetime.now(UTC), reason)
            await record_audit(conn, actor, "legal_hold" if on else "legal_hold_lifted", str(key), detail)
        return item

    async def mark_viewed(self, decision_id: str, actor: str) -> None:
        """A human saw the original bytes (it matters legally: United States v. Wilson, 2021)."""
        key = item_uuid(decision_id)
        async with self.db.transaction() as conn:
            done = await conn.execute("UPDATE evidence SET human_viewed = true WHERE decision_id = $1", key)
            if done.endswith(" 0"):
                raise EvidenceNotFound(decision_id)
            await record_audit(conn, actor, "viewed", str(key), {})
