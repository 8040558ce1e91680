"""Where the gate's data lives: ``DATABASE_URL`` when set, else the embedded Postgres of GATE_DATA_DIR."""

from __future__ import annotations

import asyncio

import asyncpg

from gate.settings import Settings
from gate.store.embedded import EmbeddedPostgres
from gate.store.pool import Pool


class Database:
    """Resolves the DSN (starting the embedded server if needed) and holds the process's one pool
    (``gate.store.pool``); single connections for the CLI."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedPostgres | None = None
        self._dsn = settings.database_url
        self._pool: Pool | None = None

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            raise RuntimeError("database not started")
        return self._dsn

    @property
    def description(self) -> str:
        """For logs and CLI errors: never the DATABASE_URL itself (it may hold a password)."""
        if self.embedded is not None:
            return f"embedded Postgres in {self.embedded.pgdata}"
        return "DATABASE_URL"

    @property
    def pool(self) -> Pool:
        """The pool every part shares; it connects (and migrates) on first use."""
        if self._pool is None:
            self._pool = Pool.from_settings(self.settings, self.dsn)
        return self._pool

    async def start(self) -> str:
        if self._dsn is None:
            self.embedded = EmbeddedPostgres(self.settings.data_dir)
            self._dsn = await asyncio.to_thread(self.embedded.start)
        return self._dsn

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None
            self._dsn = None

    async def connect(self) -> asyncpg.Connection[asyncpg.Record]:
        return await asyncpg.connect(
            self.dsn,
            timeout=self.settings.db_connect_timeout,
            command_timeout=self.settings.db_command_timeout,
        )
