"""``Pool``: the process's one asyncpg pool, and the one error its users raise when Postgres cannot answer.

Every part that talks to Postgres (the decision log, evidence, audit, review tokens and signing key, the
allowlist, takedowns, the CLI) borrows connections from one ``Pool``: one size to tune
(``GATE_DB_POOL_MIN`` / ``_MAX``), one place that opens it, migrates the schema (under the advisory
lock, so replicas can start together) and recovers from an outage.

Postgres being down is never fatal here: ``get`` raises ``StoreUnavailable`` and tries again no sooner
than ``retry_interval`` later. A failure on a connection (``failed``) replaces the pool's connections at
their next use — after a server restart every idle one is dead — and re-checks the schema then, so a
database that came back empty is migrated again before anything writes to it. A statement Postgres
refused for itself (a constraint, a lock timeout) is that caller's ``StoreUnavailable`` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from gate.errors import Unavailable
from gate.store.migrate import MigrationError, migrate

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    from gate.settings import Settings

    # A connection as the gate's queries take it: one of the pool's, or one of its own (the CLI).
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

log = logging.getLogger(__name__)

# What "Postgres cannot answer now" looks like from asyncpg: retried later, never a verdict.
DB_ERRORS = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError)
# Those of them that say the connection (or the database behind it) is gone, not this one statement.
LOST = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.UndefinedTableError,
)


class StoreUnavailable(Unavailable):
    """Postgres could not take or give what was asked (down, slow, or refusing); nothing changed."""


class Pool:
    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
        retry_interval: float = 1.0,
    ) -> None:
        self.dsn = dsn
        self._sizes = (min(min_size, max_size), max_size)
        self._connect_timeout, self._command_timeout = connect_timeout, command_timeout
        self._retry_interval = retry_interval
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._checked = False  # the schema is known to be current
        self._next_try = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, dsn: str) -> Pool:
        return cls(
            dsn,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            connect_timeout=settings.db_connect_timeout,
            # Per-statement limits are the callers' (the decision log's GATE_DB_COMMAND_TIMEOUT); this one
            # only bounds the rest, such as sealing a large evidence item in.
            command_timeout=max(settings.db_command_timeout, 30.0),
            retry_interval=settings.decision_retry_interval,
        )

    async def get(self) -> asyncpg.Pool[asyncpg.Record]:
        """The pool, opened and its schema migrated; ``StoreUnavailable`` while Postgres cannot answer."""
        if self._pool is not None and self._checked:
            return self._pool
        async with self._lock:
            if self._pool is not None and self._checked:
                return self._pool
            if time.monotonic() < self._next_try:
                raise StoreUnavailable("Postgres unreachable (retrying shortly)")
            try:
                if self._pool is None:
                    self._pool = await asyncio.wait_for(
                        asyncpg.create_pool(
                            self.dsn,
                            min_size=self._sizes[0],
                            max_size=self._sizes[1],
                            timeout=self._connect_timeout,
                            command_timeout=self._command_timeout,
                        ),
                        self._connect_timeout * 2,
                    )
                async with self._pool.acquire(timeout=self._connect_timeout) as conn:
                    await migrate(conn)
            except (*DB_ERRORS, MigrationError) as exc:
                self._next_try = time.monotonic() + self._retry_interval
                raise StoreUnavailable(f"Postgres unavailable: {type(exc).__name__}: {exc}") from exc
            self._checked = True
            return self._pool

    async def failed(self) -> None:
        """Postgres went away under a statement: the pool's connections are replaced at their next use,
        and the schema is checked again before the next one is handed out."""
        self._checked = False
        if self._pool is not None:
            with contextlib.suppress(*DB_ERRORS):
                await self._pool.expire_connections()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """One connection in a transaction; Postgres failures become ``StoreUnavailable``."""
        pool = await self.get()
        try:
            async with pool.acquire(timeout=self._connect_timeout) as conn:
                try:
                    async with conn.transaction():
                        yield conn
                except LOST:  # not a busy pool (acquire's own timeout): the connection went away
                    await self.failed()
                    raise
        except DB_ERRORS as exc:
            raise StoreUnavailable(f"Postgres failed: {type(exc).__name__}") from exc

    @contextlib.asynccontextmanager
    async def own_connection(self) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
        """A connection of its own, outside the pool and closed when the block ends: for a session-level
        advisory lock, which must end with its holder (a pooled connection would carry it back into the
        pool). No statement timeout: waiting for such a lock may take as long as its holder's work."""
        await self.get()  # the schema first, as for every other user
        try:
            conn = await asyncpg.connect(self.dsn, timeout=self._connect_timeout, command_timeout=None)
        except DB_ERRORS as exc:
            raise StoreUnavailable(f"Postgres unavailable: {type(exc).__name__}: {exc}") from exc
        try:
            yield conn
        finally:
            try:
                await conn.close(timeout=self._connect_timeout)
            except DB_ERRORS:  # the server gone or slow: drop the socket (the session ends with it)
                conn.terminate()
            except asyncio.CancelledError:
                conn.terminate()
                raise

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.transaction() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.transaction() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.transaction() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.transaction() as conn:
            return await conn.execute(query, *args)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        self._checked = False
        if pool is not None:
            await pool.close()
