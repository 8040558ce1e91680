"""Retention on a real Postgres: deadlines per state, legal hold, and a purge that deletes only expired
evidence (never the decision row)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from gate.store.evidence import Evidence
from gate.store.item import EvidenceState
from gate.store.purge import purge
from gate.store.retention import MIN_REPORTED_DAYS, Retention
from gate.store.transitions import InvalidTransition

from .conftest import judged

DAY = timedelta(days=1)


async def test_deadlines_follow_the_state(store: Evidence) -> None:
    record = judged(b"reported bytes")
    await store.vault.keep(record, b"reported bytes", Retention(hold_days=3))
    confirmed = await store.items.confirm(record.id, "rev")
    assert (confirmed.state, confirmed.expires_at) == (
        EvidenceState.CONFIRMED,
        None,
    )  # no clock before the report
    reported = await store.items.mark_reported(record.id, "rev", "CT-123", Retention(reported_days=10))
    assert reported.state is EvidenceState.REPORTED and reported.report_id == "CT-123"
    assert reported.reported_at is not None and reported.expires_at is not None
    # A policy asking for less than the law is raised to one year (366 days) after the report.
    assert reported.expires_at - reported.reported_at == timedelta(days=MIN_REPORTED_DAYS)
    with pytest.raises(InvalidTransition):
        await store.items.release(record.id, "rev")
    assert [e.action for e in await store.audit.trail(reported.decision_id)] == ["confirmed", "reported"]


async def test_legal_hold_blocks_release_and_purge(store: Evidence) -> None:
    old = datetime.now(UTC) - 40 * DAY
    record = judged(b"on hold", when=old)
    await store.vault.keep(record, b"on hold", Retention(hold_days=30))
    held = await store.items.set_legal_hold(record.id, "lawyer", True, "preservation request PR-17")
    assert (held.legal_hold, held.legal_hold_reason, held.legal_hold_by) == (
        True,
        "preservation request PR-17",
        "lawyer",
    )
    with pytest.raises(InvalidTransition, match="legal hold"):
        await store.items.release(record.id, "rev")
    assert await purge(store.db) == []
    assert await purge(store.db, datetime.now(UTC) + 3650 * DAY) == []  # no deadline outlasts a hold
    assert await store.vault.decrypt(record.id, "lawyer", "reveal") == b"on hold"
    with pytest.raises(InvalidTransition, match="already under legal hold"):
        await store.items.set_legal_hold(record.id, "other", True, "another matter")
    lifted = await store.items.set_legal_hold(record.id, "lawyer", False, "matter closed")
    assert (lifted.legal_hold, lifted.legal_hold_reason, lifted.legal_hold_by) == (False, None, None)
    with pytest.raises(InvalidTransition, match="not under legal hold"):
        await store.items.set_legal_hold(record.id, "lawyer", False)
    assert [p.decision_id for p in await purge(store.db)] == [str(uuid.UUID(record.id))]
    trail = [(e.actor, e.action, e.detail) for e in await store.audit.trail(lifted.decision_id)]
    assert trail[0] == ("lawyer", "legal_hold", {"reason": "preservation request PR-17"})
    assert trail[2][:2] == ("lawyer", "legal_hold_lifted")
    assert (
        trail[2][2]["reason"] == "matter closed" and trail[2][2]["held_for"] == "preservation request PR-17"
    )
    with pytest.raises(InvalidTransition, match="no bytes left to hold"):
        await store.items.set_legal_hold(record.id, "lawyer", True, "too late")


@pytest.mark.parametrize("reason", [None, "", "   ", "two\nlines", "x" * 201])
async def test_a_legal_hold_needs_a_one_line_reason(store: Evidence, reason: str | None) -> None:
    record = judged(b"reasons")
    await store.vault.keep(record, b"reasons", Retention())
    with pytest.raises(InvalidTransition, match="reason"):
        await store.items.set_legal_hold(record.id, "lawyer", True, reason)
    item = await store.items.get(record.id)
    assert item is not None and not item.legal_hold
    assert await store.audit.trail(item.decision_id) == []


async def test_purge_deletes_only_expired_evidence_and_keeps_decisions(
    store: Evidence, fresh_dsn: str
) -> None:
    now = datetime.now(UTC)
    expired = judged(b"expired", when=now - 31 * DAY)
    fresh = judged(b"fresh", when=now - 29 * DAY)
    reported = judged(b"reported", when=now - 400 * DAY)
    for rec, body in ((expired, b"expired"), (fresh, b"fresh"), (reported, b"reported")):
        await store.vault.keep(rec, body, Retention(hold_days=30))
    await store.items.mark_reported(reported.id, "rev", "CT-9")
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(
            "INSERT INTO decisions (id, time, did_method, verdict, sha256) VALUES ($1, $2, 'none', 'quarantine', $3)",
            uuid.UUID(expired.id),
            expired.time,
            expired.hashes.sha256 if expired.hashes else None,
        )
        purged = await purge(store.db)
        assert [p.decision_id for p in purged] == [str(uuid.UUID(expired.id))]
        assert await conn.fetchval("SELECT count(*) FROM decisions WHERE id = $1", uuid.UUID(expired.id)) == 1
        row = await conn.fetchrow("SELECT * FROM evidence WHERE decision_id = $1", uuid.UUID(expired.id))
    finally:
        await conn.close()
    assert row is not None
    assert row["ciphertext"] is None and row["wrapped_key"] is None and row["purge_reason"] == "expired"
    assert row["sha256"] == (
        expired.hashes.sha256 if expired.hashes else None
    )  # the record of what it was stays
    assert await store.vault.decrypt(fresh.id, "t", "reveal") == b"fresh"
    assert await store.vault.decrypt(reported.id, "t", "reveal") == b"reported"
    assert [(e.actor, e.action) for e in await store.audit.trail(str(uuid.UUID(expired.id)))] == [
        ("gate", "purge")
    ]
    # A year and a day after the report, the reported item goes too.
    later = [p.decision_id for p in await purge(store.db, now + 367 * DAY)]
    assert str(uuid.UUID(reported.id)) in later
