"""Postgres really stopped mid-run: decisions keep being accepted, spool, and land exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from gate.record import DecisionRecord
from gate.store.embedded import EmbeddedPostgres
from gate.store.spool import Spool
from tests.support.postgres import server_dir

from . import records as R
from .conftest import fetch_rows, make_log


async def _until(predicate: Callable[[], object], limit: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_postgres_stopped_mid_run_loses_nothing(tmp_path: Path) -> None:
    with server_dir() as data:
        await _stopped_mid_run(EmbeddedPostgres(data), tmp_path)  # its own server: this test stops it


async def _stopped_mid_run(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    dsn = await asyncio.to_thread(embedded.start)
    log = make_log(dsn, tmp_path / "spool", batch_size=16)
    await log.start()
    sent: list[DecisionRecord] = []

    async def uploads(start: int, count: int) -> None:
        for n in range(start, start + count):
            assert log.accepting()
            record = R.forward(n)
            log.submit(record)
            sent.append(record)
            if n % 8 == 0:
                await asyncio.sleep(0.005)  # a trickle, so batches are written while we go on

    try:
        await uploads(0, 60)
        await log.wait_idle()
        assert len(await fetch_rows(dsn)) == 60

        await asyncio.to_thread(embedded.halt)
        await uploads(60, 100)
        await log.wait_idle()
        assert log.accepting()
        assert log.spool.pending_records == 100
        assert log.spool.path.stat().st_size > 0

        await asyncio.to_thread(embedded.resume)
        await uploads(160, 40)
        await _until(lambda: log.spool.pending_records == 0)
        await log.wait_idle()
        await log.close()

        rows = await fetch_rows(dsn)
        assert len(rows) == len(sent) == 200
        by_id = {r["id"]: r for r in rows}
        assert len(by_id) == 200
        for record in sent:
            row = by_id[uuid.UUID(hex=record.id)]
            assert record.hashes is not None
            assert (row["time"], row["sha256"], row["did"], row["verdict"], row["size"]) == (
                record.time,
                record.hashes.sha256,
                record.uploader.did,
                "forward",
                record.hashes.size,
            )
        assert log.spool.path.stat().st_size == 0
    finally:
        await log.close()
        await asyncio.to_thread(embedded.stop)


async def test_shutdown_drains_the_queue(fresh_dsn: str, tmp_path: Path) -> None:
    log = make_log(fresh_dsn, tmp_path / "spool", batch_size=50)
    await log.start()
    sent = [R.forward(n) for n in range(500)]
    for record in sent:
        log.submit(record)
    await log.close()  # no wait: close itself must write everything queued
    rows = await fetch_rows(fresh_dsn)
    assert sorted(r["id"] for r in rows) == sorted(uuid.UUID(hex=r.id) for r in sent)
    assert log.spool.pending_records == 0


async def test_uploads_decided_while_a_batch_is_converted_are_all_stored_once(
    fresh_dsn: str, tmp_path: Path
) -> None:
    # A batch is converted a slice at a time with the event loop free in between: records submitted
    # meanwhile queue behind it, and a drain that cuts the conversion short still finds every record.
    # drain_timeout 0: the drain at the end is cut short at once, as a slow Postgres would cut it.
    log = make_log(fresh_dsn, tmp_path / "spool", batch_size=500, flush_interval=0.0, drain_timeout=0.0)
    await log.start()
    sent = [R.forward(n) for n in range(1500)]
    for start in range(0, 1000, 10):
        for record in sent[start : start + 10]:
            log.submit(record)
        await asyncio.sleep(0)  # a turn of the loop: the writer converts a slice
    await log.wait_idle()
    stored = [r["id"] for r in await fetch_rows(fresh_dsn)]
    assert sorted(stored) == sorted(uuid.UUID(hex=r.id) for r in sent[:1000])  # each once
    for record in sent[1000:]:
        log.submit(record)
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the writer is mid-batch
    await log.close()
    spool = Spool(tmp_path / "spool", 1 << 30)
    spool.open()
    spooled, bad, _ = spool.read_chunk(10_000)
    spool.close()
    kept = {r["id"] for r in await fetch_rows(fresh_dsn)} | {uuid.UUID(r["id"]) for r in spooled}
    assert not bad
    assert kept == {uuid.UUID(hex=r.id) for r in sent}
