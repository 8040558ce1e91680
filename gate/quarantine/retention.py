"""How long evidence is kept, which state changes are allowed, and the purge of expired evidence.

Deadlines (``evidence.expires_at``), fixed when an item enters a state:

- ``held``: decision time + the policy's ``[evidence] hold_days``. Unreviewed evidence is not kept
  forever: it is the most sensitive data the gate holds.
- ``released``: none — a false positive's bytes are deleted in the same transaction.
- ``confirmed``: none until reported. A confirmed match must be reported "as soon as reasonably possible"
  (18 U.S.C. §2258A(a)); the preservation clock starts at the report, so nothing may expire before it.
- ``reported``: report time + ``reported_days`` (never less than 366 days, whatever the policy says:
  §2258A(h) as amended by the 2024 REPORT Act requires one year after the report; 366 days is one
  year even across a leap day).
- ``legal_hold``: while set, nothing is purged or released, whatever the deadline. Placed by an admin
  with the matter it is held for, lifted by an admin; both audited. Lifting leaves the deadline as it
  was: an item whose deadline passed under the hold is purged by the next purge.

Purging deletes only the sealed bytes (and the wrapped data key); the evidence row keeps its hashes,
state and history and the decision row in ``decisions`` is never touched.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gate.errors import Refusal
from gate.policy.model import Evidence
from gate.quarantine.item import SELECT_ITEM, EvidenceItem, EvidenceState, item_from_row

if TYPE_CHECKING:
    from gate.store.pool import Connection

log = logging.getLogger("gate.evidence")

MIN_REPORTED_DAYS = 366
DEFAULT_HOLD_DAYS = 30

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


@dataclass(frozen=True, slots=True)
class Retention:
    hold_days: int = DEFAULT_HOLD_DAYS
    reported_days: int = MIN_REPORTED_DAYS

    @classmethod
    def of(cls, evidence: Evidence) -> Retention:
        """The deadlines the policy's ``[evidence]`` table sets."""
        return cls(evidence.hold_days, evidence.reported_days)

    def held_until(self, created_at: datetime) -> datetime:
        return created_at + timedelta(days=self.hold_days)

    def reported_until(self, reported_at: datetime) -> datetime:
        return reported_at + timedelta(days=max(self.reported_days, MIN_REPORTED_DAYS))


@dataclass(frozen=True, slots=True)
class Purged:
    decision_id: str
    state: str
    sha256: str
    expired_at: datetime


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
