"""Where the decision log lives: ``DATABASE_URL`` when set, else the embedded Postgres of GATE_DATA_DIR."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from gate.settings import Settings
from gate.store.embedded import EmbeddedPostgres


class Database:
    """Resolves the DSN (starting the embedded server if needed) and hands out connections and pools."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedPostgres | None = None
        self._dsn = settings.database_url

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

    async def start(self) -> str:
        if self._dsn is None:
            self.embedded = EmbeddedPostgres(self.settings.data_dir)
            self._dsn = await asyncio.to_thread(self.embedded.start)
        return self._dsn

    async def stop(self) -> None:
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None
            self._dsn = None

    async def connect(self) -> Any:
        return await asyncpg.connect(
            self.dsn,
            timeout=self.settings.db_connect_timeout,
            command_timeout=self.settings.db_command_timeout,
        )
