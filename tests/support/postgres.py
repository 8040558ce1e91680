"""One real Postgres per test session (DATABASE_URL when set, else the embedded pgserver), and a fresh
namespace per test that needs one. Imported as fixtures by ``tests/integration/conftest.py``."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from gate.store.embedded import EmbeddedPostgres
from gate.store.migrate import migrate


def dsn_for(dsn: str, database: str) -> str:
    """The same server, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


@contextlib.contextmanager
def server_dir() -> Iterator[Path]:
    """A directory for an embedded server, outside pytest's basetemp: as root, pgserver runs Postgres as
    the ``pgserver`` user and opens the parents for it, and every pytest session start resets
    /tmp/pytest-of-root to 0700 (several of us run pytest at once on this machine)."""
    path = Path(tempfile.mkdtemp(prefix="upload-gate-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def fresh_database(server_dsn: str) -> AsyncIterator[str]:
    """An empty namespace of its own for one test: a new schema, first on the DSN's ``search_path``
    (asyncpg passes unknown DSN parameters as server settings). Far cheaper than CREATE DATABASE,
    which matters because every integration gate gets one."""
    name = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
        parts = urlsplit(server_dsn)
        query = "&".join(filter(None, [parts.query, f"search_path={name}"]))
        yield urlunsplit(parts._replace(query=query))
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
    finally:
        await conn.close()


async def migrated(dsn: str) -> None:
    """The gate's schema brought up to date in ``dsn``, as the gate does when it starts."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with server_dir() as path:
        embedded = EmbeddedPostgres(path)
        yield embedded.start()
        embedded.stop()


@pytest.fixture
async def fresh_dsn(pg_dsn: str) -> AsyncIterator[str]:
    async with fresh_database(pg_dsn) as dsn:
        yield dsn
