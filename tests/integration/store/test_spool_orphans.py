"""Spools left by worker processes that no longer run are moved into live ones, and replayed.

``upload-gate serve --workers N`` gives each worker its own spool (``<data>/workers/<i>/spool``); one
process uses ``<data>/spool``. Restarting with another layout must not strand the decisions that a
previous run spooled while Postgres was away.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
import uuid
from pathlib import Path

import asyncpg

from gate.store.rows import record_to_row
from gate.store.spool import Spool
from gate.workers import gather_orphans
from tests.integration.conftest import process_env
from tests.support.boot import gate_process

from . import records as R
from .conftest import fetch_rows

MAX = 1 << 30


def _spool(directory: Path, ids: range) -> list[str]:
    rows = [record_to_row(R.forward(n)) for n in ids]
    spool = Spool(directory, MAX)
    spool.open()
    try:
        spool.append(rows)
    finally:
        spool.close()
    return [str(r["id"]) for r in rows]


def _pending_ids(directory: Path) -> list[str]:
    spool = Spool(directory, MAX)
    spool.open()
    try:
        rows, bad, _ = spool.read_chunk(10_000)
    finally:
        spool.close()
    assert bad == []
    return [str(r["id"]) for r in rows]


def test_fewer_workers_take_over_the_spools_of_the_ones_gone(tmp_path: Path) -> None:
    data = tmp_path / "var"
    w0 = _spool(data / "workers" / "0" / "spool", range(0, 5))
    w1 = _spool(data / "workers" / "1" / "spool", range(5, 9))
    w2 = _spool(data / "workers" / "2" / "spool", range(9, 20))
    w3 = _spool(data / "workers" / "3" / "spool", range(20, 22))

    assert gather_orphans(data, 2, MAX) == 13
    # Worker 2's rows follow worker 0's own, worker 3's follow worker 1's, each in its own order.
    assert _pending_ids(data / "workers" / "0" / "spool") == w0 + w2
    assert _pending_ids(data / "workers" / "1" / "spool") == w1 + w3
    for gone in ("2", "3"):
        assert not (data / "workers" / gone / "spool" / "decisions.spool").exists()

    # Back to one process: everything ends up in <data>/spool; then to three workers, into worker 0.
    assert gather_orphans(data, 1, MAX) == 22
    assert sorted(_pending_ids(data / "spool")) == sorted(w0 + w1 + w2 + w3)
    assert gather_orphans(data, 3, MAX) == 22
    assert not (data / "spool" / "decisions.spool").exists()
    assert sorted(_pending_ids(data / "workers" / "0" / "spool")) == sorted(w0 + w1 + w2 + w3)
    assert gather_orphans(data, 3, MAX) == 0  # nothing left to move


def test_a_spool_already_replayed_in_part_moves_only_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "var"
    ids = _spool(data / "workers" / "1" / "spool", range(10))
    orphan = Spool(data / "workers" / "1" / "spool", MAX)
    orphan.open()
    _, _, offset = orphan.read_chunk(4)
    orphan.commit(offset, 4)  # Postgres took the first four before that run ended
    orphan.close()
    assert gather_orphans(data, 1, MAX) == 6
    assert _pending_ids(data / "spool") == ids[4:]


def test_a_spool_in_use_by_another_gate_is_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "var"
    ids = _spool(data / "workers" / "1" / "spool", range(3))
    fd = os.open(data / "workers" / "1" / "spool" / "decisions.spool", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running gate holds
        assert gather_orphans(data, 1, MAX) == 0
    finally:
        os.close(fd)
    assert _pending_ids(data / "workers" / "1" / "spool") == ids


def test_a_target_too_full_to_take_them_leaves_the_orphan_whole(tmp_path: Path) -> None:
    data = tmp_path / "var"
    ids = _spool(data / "workers" / "1" / "spool", range(50))
    assert gather_orphans(data, 1, 2000) == 0  # 50 rows are far more than 2,000 bytes
    assert _pending_ids(data / "workers" / "1" / "spool") == ids


async def test_a_gate_started_with_fewer_workers_replays_what_the_others_spooled(
    tmp_path: Path, fresh_dsn: str
) -> None:
    data = tmp_path / "var"
    stranded = _spool(data / "workers" / "1" / "spool", range(7))
    env = process_env(tmp_path, "http://127.0.0.1:9", fresh_dsn)  # no upstream: none is needed
    async with gate_process(env, tmp_path) as gate:
        deadline = time.monotonic() + 90
        landed: set[str] = set()
        while landed != set(stranded):
            assert time.monotonic() < deadline and gate.proc.poll() is None, gate.log()
            await asyncio.sleep(0.2)
            try:
                landed = {str(r["id"]) for r in await fetch_rows(fresh_dsn)}
            except asyncpg.UndefinedTableError:  # the gate has not migrated the fresh database yet
                continue
        assert {uuid.UUID(i) for i in landed} == {uuid.UUID(i) for i in stranded}
        assert "moved 7 unreplayed decisions" in gate.log()
        code = gate.stop(90)
    assert code == 0, gate.log()
