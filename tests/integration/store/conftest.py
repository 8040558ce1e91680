"""Decision-log helpers. The session Postgres (``pg_dsn``) and per-test namespaces (``fresh_dsn``) come
from ``tests/support/postgres.py`` via ``tests/integration/conftest.py``."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from gate.store.decision_log import DecisionLog


def make_log(dsn: str, spool_dir: Path, **kwargs: object) -> DecisionLog:
    options: dict[str, object] = {"retry_interval": 0.1, "connect_timeout": 2.0, "command_timeout": 5.0}
    options.update(kwargs)
    return DecisionLog(dsn, spool_dir, **options)  # type: ignore[arg-type]


async def fetch_rows(dsn: str) -> list[dict[str, object]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM decisions ORDER BY time, id")]
    finally:
        await conn.close()
