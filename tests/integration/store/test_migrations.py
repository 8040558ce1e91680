"""Migrations: idempotent, and safe when several gates start at once against one database."""

from __future__ import annotations

import asyncio

import asyncpg

from gate.store.migrate import migrate, schema_ready, shipped_migrations


async def test_migrate_twice_applies_once(fresh_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert not await schema_ready(conn)
        first = await migrate(conn)
        second = await migrate(conn)
        assert [m.version for m in first] == [m.version for m in shipped_migrations()]
        assert second == []
        assert await schema_ready(conn)
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows] == [
            (m.version, m.name) for m in shipped_migrations()
        ]
        indexes = {
            r["indexname"]
            for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'decisions'")
        }
        assert {
            "decisions_time_idx",
            "decisions_did_time_idx",
            "decisions_sha256_idx",
            "decisions_cid_idx",
            "decisions_verdict_time_idx",
        } <= indexes
    finally:
        await conn.close()


async def test_concurrent_starts_apply_each_migration_exactly_once(fresh_dsn: str) -> None:
    conns = [await asyncpg.connect(fresh_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        # Every starter succeeded, and between them each migration was applied by exactly one.
        applied = sorted(m.version for result in results for m in result)
        assert applied == [m.version for m in shipped_migrations()]
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(shipped_migrations())
        assert await conns[0].fetchval("SELECT count(*) FROM decisions") == 0
    finally:
        for c in conns:
            await c.close()
