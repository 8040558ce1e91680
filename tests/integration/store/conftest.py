"""Decision-log helpers. The session Postgres (``pg_dsn``) and per-test namespaces (``fresh_dsn``) come
from ``tests/support/postgres.py`` via ``tests/integration/conftest.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from gate.store.decision_log import DecisionLog
from gate.store.pool import Pool


class OwnPoolLog(DecisionLog):
    """A decision log alone in its process: closing it closes its pool too."""

    async def close(self) -> None:
        await super().close()
        await self.db.close()


def make_log(dsn: str, spool_dir: Path, **kwargs: Any) -> DecisionLog:  # DecisionLog's keyword options
    options: dict[str, Any] = {"retry_interval": 0.1, "command_timeout": 5.0}
    options.update(kwargs)
    db = Pool(dsn, connect_timeout=2.0, retry_interval=0.1)
    return OwnPoolLog(db, spool_dir, **options)


async def fetch_rows(dsn: str) -> list[dict[str, Any]]:  # a column per key, of its own type
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM decisions ORDER BY time, id")]
    finally:
        await conn.close()
