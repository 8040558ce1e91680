"""The spool: replayed in order and exactly once, also after a restart, a crash or a torn write."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import asyncpg

from gate.store.migrate import migrate
from gate.store.rows import INSERT_SQL, insert_args, record_to_row
from gate.store.spool import Spool
from tests.support.postgres import dsn_for

from . import records as R
from .conftest import fetch_rows, make_log
from .test_outage import _until

UNREACHABLE = "postgresql://postgres@/upload_gate?host=/nonexistent-socket-dir"


async def _ids_in_insert_order(dsn: str) -> list[uuid.UUID]:
    conn = await asyncpg.connect(dsn)
    try:
        # A fresh heap with inserts only: physical order is insertion order.
        return [r["id"] for r in await conn.fetch("SELECT id FROM decisions ORDER BY ctid")]
    finally:
        await conn.close()


async def test_restart_with_a_non_empty_spool_replays_it(fresh_dsn: str, tmp_path: Path) -> None:
    sent = [R.forward(n) for n in range(30)] + [R.reject(31), R.quarantine(32), R.shadow(33)]
    first = make_log(UNREACHABLE, tmp_path / "spool", batch_size=7)
    await first.start()
    for record in sent:
        first.submit(record)
    await first.wait_idle()
    await first.close()  # the gate stops while Postgres is still away
    assert len(first.spool.path.read_bytes().splitlines()) == len(sent)

    second = make_log(fresh_dsn, tmp_path / "spool", batch_size=7)
    await second.start()
    await _until(lambda: second.spool.pending_records == 0)
    await second.close()
    assert await _ids_in_insert_order(fresh_dsn) == [uuid.UUID(hex=r.id) for r in sent]
    rows = await fetch_rows(fresh_dsn)
    assert {(r["id"], r["verdict"], r["rule"]) for r in rows} == {
        (uuid.UUID(hex=r.id), r.verdict.value if r.verdict else None, r.decision.rule if r.decision else None)
        for r in sent
    }
    assert second.spool.path.stat().st_size == 0


async def test_crash_between_insert_and_spool_truncation_replays_without_duplicates(
    fresh_dsn: str, tmp_path: Path
) -> None:
    sent = [R.forward(n) for n in range(40)]
    rows = [record_to_row(r) for r in sent]
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.open()
    spool.append(rows)
    spool.close()
    # The previous run inserted the first 25 and died before advancing the spool offset.
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await migrate(conn)
        await conn.execute(INSERT_SQL, *insert_args(rows[:25]))
    finally:
        await conn.close()

    log = make_log(fresh_dsn, tmp_path / "spool", batch_size=10)
    await log.start()
    await _until(lambda: log.spool.pending_records == 0)
    await log.close()
    got = await fetch_rows(fresh_dsn)
    assert len(got) == 40
    assert sorted(r["id"] for r in got) == sorted(uuid.UUID(hex=r.id) for r in sent)


async def test_torn_last_line_is_dropped_and_the_rest_replayed(fresh_dsn: str, tmp_path: Path) -> None:
    sent = [R.forward(n) for n in range(10)]
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.open()
    spool.append([record_to_row(r) for r in sent])
    spool.close()
    with open(spool.path, "ab") as f:
        f.write(b'{"id": "0000')  # a crash in the middle of an append
    log = make_log(fresh_dsn, tmp_path / "spool")
    await log.start()
    await _until(lambda: log.spool.pending_records == 0)
    await log.close()
    assert sorted(r["id"] for r in await fetch_rows(fresh_dsn)) == sorted(uuid.UUID(hex=r.id) for r in sent)


async def test_rows_spooled_before_the_source_column_replay_as_uploads(
    fresh_dsn: str, tmp_path: Path
) -> None:
    """A spool left by a gate older than migration 007 (its rows have no ``source``): every decision
    then was an upload, and the replay says so rather than failing the batch."""
    sent = [R.forward(n) for n in range(3)]
    rows = [record_to_row(r) for r in sent]
    for row in rows:
        del row["source"]
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.open()
    spool.append(rows)
    spool.close()
    log = make_log(fresh_dsn, tmp_path / "spool")
    await log.start()
    await _until(lambda: log.spool.pending_records == 0)
    await log.close()
    got = await fetch_rows(fresh_dsn)
    assert sorted((r["id"], r["source"]) for r in got) == sorted(
        (uuid.UUID(hex=r.id), "upload") for r in sent
    )


async def test_not_accepting_only_when_postgres_and_spool_both_fail(pg_dsn: str, tmp_path: Path) -> None:
    name = "t_late_" + secrets.token_hex(4)
    dsn = dsn_for(pg_dsn, name)  # a database that does not exist yet: Postgres refuses us
    log = make_log(dsn, tmp_path / "spool", spool_max_bytes=10)  # and the spool has no room
    await log.start()
    assert log.accepting()
    sent = [R.forward(n) for n in range(3)]
    for record in sent:
        log.submit(record)
    await _until(lambda: not log.accepting())
    assert log.spool.path.stat().st_size == 0

    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        await _until(log.accepting)  # Postgres back: the held decisions are written
        await log.wait_idle()
        await log.close()
        assert sorted(r["id"] for r in await fetch_rows(dsn)) == sorted(uuid.UUID(hex=r.id) for r in sent)
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()
