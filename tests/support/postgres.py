"""One real Postgres per test session (DATABASE_URL when set, else the embedded pgserver), and a fresh
database per test that needs one. Imported as fixtures by ``tests/integration/conftest.py``."""

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


def dsn_for(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


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
    name = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
        yield dsn_for(pg_dsn, name)
        await conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await conn.close()
