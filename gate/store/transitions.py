"""The evidence item's state machine: which changes are allowed from which state, and each change made
inside the caller's transaction (the row locked first). Deadlines: ``gate.store.retention``.

    held ──▶ confirmed ──▶ reported
      │         │
      └────┬────┴──▶ released (the bytes deleted at once)
      held ───────▶ reported

A legal hold (admins, with the matter it is held for) blocks release and purge until it is lifted.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gate.errors import Refusal
from gate.labels.store import negate_released
from gate.store.item import SELECT_ITEM, EvidenceItem, EvidenceState, item_from_row
from gate.store.retention import Retention

if TYPE_CHECKING:
    from gate.store.pool import Connection


# target state → states it may be entered from
TRANSITIONS: dict[EvidenceState, frozenset[EvidenceState]] = {
    EvidenceState.RELEASED: frozenset({EvidenceState.HELD, EvidenceState.CONFIRMED}),
    EvidenceState.CONFIRMED: frozenset({EvidenceState.HELD}),
    EvidenceState.REPORTED: frozenset({EvidenceState.HELD, EvidenceState.CONFIRMED}),
}


class EvidenceNotFound(Refusal, LookupError):
    """No evidence item has this decision id."""


class InvalidTransition(Refusal, ValueError):
    """The item's state (or legal hold) does not allow this change; the message says why."""


async def change_state(
    conn: Connection,
    decision_id: uuid.UUID,
    target: EvidenceState,
    actor: str,
    now: datetime,
    retention: Retention,
    *,
    report_id: str | None = None,
) -> EvidenceItem:
    """Move one item to ``target`` inside the caller's transaction (the row is locked first)."""
    row = await conn.fetchrow(
        "SELECT state, legal_hold FROM evidence WHERE decision_id = $1 FOR UPDATE", decision_id
    )
    if row is None:
        raise EvidenceNotFound(decision_id)
    current = EvidenceState(row["state"])
    if current not in TRANSITIONS[target]:
        raise InvalidTransition(f"evidence {decision_id} is {current.value}; it cannot become {target.value}")
    if target is EvidenceState.RELEASED:
        if row["legal_hold"]:
            raise InvalidTransition(
                f"evidence {decision_id} is under legal hold; lift the hold to release it"
            )
        sql = (
            "UPDATE evidence SET state = 'released', key_id = NULL, wrapped_key = NULL, nonce = NULL,"
            " ciphertext = NULL, expires_at = NULL, purged_at = $2, purge_reason = 'released',"
            " state_changed_at = $2, state_changed_by = $3 WHERE decision_id = $1"
        )
        await conn.execute(sql, decision_id, now, actor)
        # A false positive: labels it led to are withdrawn in the same transaction (negation labels).
        await negate_released(conn, decision_id)
    elif target is EvidenceState.CONFIRMED:
        sql = (
            "UPDATE evidence SET state = 'confirmed', expires_at = NULL, state_changed_at = $2,"
            " state_changed_by = $3 WHERE decision_id = $1"
        )
        await conn.execute(sql, decision_id, now, actor)
    else:
        if not report_id or not report_id.strip():
            raise InvalidTransition("a report id (the CyberTipline report number) is required")
        sql = (
            "UPDATE evidence SET state = 'reported', report_id = $4, reported_at = $2, expires_at = $5,"
            " state_changed_at = $2, state_changed_by = $3 WHERE decision_id = $1"
        )
        await conn.execute(sql, decision_id, now, actor, report_id.strip(), retention.reported_until(now))
    return await _reread(conn, decision_id)


async def _reread(conn: Connection, decision_id: uuid.UUID) -> EvidenceItem:
    """The item as the caller's transaction has just changed it."""
    row = await conn.fetchrow(SELECT_ITEM, decision_id)
    if row is None:  # it was locked above: only a concurrent DELETE could do this, and nothing deletes
        raise EvidenceNotFound(decision_id)
    return item_from_row(row)


HOLD_REASON_LIMIT = 200


def hold_reason(raw: str | None, *, required: bool) -> str | None:
    """A legal hold's reason as stored: stripped, printable, at most 200 characters."""
    text = (raw or "").strip()
    if not text:
        if required:
            raise InvalidTransition("a legal hold needs a reason: the matter it is held for")
        return None
    if len(text) > HOLD_REASON_LIMIT or not text.isprintable():
        raise InvalidTransition(f"a legal hold reason is one line of up to {HOLD_REASON_LIMIT} characters")
    return text


async def change_hold(
    conn: Connection, decision_id: uuid.UUID, on: bool, actor: str, now: datetime, reason: str | None
) -> tuple[EvidenceItem, dict[str, Any]]:
    """Place (``on``) or lift the legal hold of one item inside the caller's transaction; returns the
    item and the detail its audit row records."""
    row = await conn.fetchrow(
        "SELECT legal_hold, legal_hold_reason, legal_hold_by, legal_hold_at, ciphertext IS NOT NULL AS has_bytes,"
        " purge_reason FROM evidence WHERE decision_id = $1 FOR UPDATE",
        decision_id,
    )
    if row is None:
        raise EvidenceNotFound(decision_id)
    if on:
        text = hold_reason(reason, required=True)
        if row["legal_hold"]:
            raise InvalidTransition(
                f"evidence {decision_id} is already under legal hold ({row['legal_hold_reason']}, placed by "
                f"{row['legal_hold_by']}); lift it first to hold it for another matter"
            )
        if not row["has_bytes"]:
            raise InvalidTransition(
                f"evidence {decision_id} has no bytes left to hold (they were {row['purge_reason']})"
            )
        await conn.execute(
            "UPDATE evidence SET legal_hold = true, legal_hold_reason = $2, legal_hold_by = $3,"
            " legal_hold_at = $4 WHERE decision_id = $1",
            decision_id,
            text,
            actor,
            now,
        )
        detail: dict[str, Any] = {"reason": text}
    else:
        text = hold_reason(reason, required=False)
        if not row["legal_hold"]:
            raise InvalidTransition(f"evidence {decision_id} is not under legal hold")
        await conn.execute(
            "UPDATE evidence SET legal_hold = false, legal_hold_reason = NULL, legal_hold_by = NULL,"
            " legal_hold_at = NULL WHERE decision_id = $1",
            decision_id,
        )
        at = row["legal_hold_at"]
        detail = {
            "reason": text,
            "held_for": row["legal_hold_reason"],
            "held_by": row["legal_hold_by"],
            "held_since": at.isoformat() if at else None,
        }
    return await _reread(conn, decision_id), detail
