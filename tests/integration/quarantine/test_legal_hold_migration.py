"""Migration 006 on a database that already holds a legal hold placed before it (through the Python
API, which recorded only the audit row): who and when come from the audit, the reason says it was not
recorded, and the new rule (a hold always says why and by whom) holds from then on."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from gate.store.migrate import shipped_migrations


async def test_holds_placed_before_006_take_who_and_when_from_the_audit(fresh_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        for mig in shipped_migrations():
            if mig.version < 6:
                await conn.execute(mig.sql)
        held, free = uuid.uuid4(), uuid.uuid4()
        for item, hold in ((held, True), (free, False)):
            await conn.execute(
                "INSERT INTO evidence (decision_id, created_at, verdict, state_changed_at, state_changed_by,"
                " sha256, md5, sha1, cid, size, did_method, legal_hold)"
                " VALUES ($1, now(), 'quarantine', now(), 'gate', 's', 'm', 'h', 'c', 1, 'unknown', $2)",
                item,
                hold,
            )
        await conn.execute(
            "INSERT INTO audit (at, actor, action, subject) VALUES"
            " ('2026-01-02T03:04:05Z', 'counsel', 'legal_hold', $1)",
            str(held),
        )
        [mig] = [m for m in shipped_migrations() if m.version == 6]
        await conn.execute(mig.sql)
        rows = {
            r["decision_id"]: r
            for r in await conn.fetch(
                "SELECT decision_id, legal_hold_reason, legal_hold_by, legal_hold_at FROM evidence"
            )
        }
        assert rows[held]["legal_hold_by"] == "counsel"
        assert rows[held]["legal_hold_at"].isoformat() == "2026-01-02T03:04:05+00:00"
        assert rows[held]["legal_hold_reason"] == "not recorded (placed before migration 006)"
        assert (rows[free]["legal_hold_reason"], rows[free]["legal_hold_by"]) == (None, None)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE evidence SET legal_hold = true WHERE decision_id = $1", free)
    finally:
        await conn.close()
