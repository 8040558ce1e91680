from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gate.store.pool import Pool
from tests.support.serving import serving


@pytest.fixture
async def pool(fresh_dsn: str) -> AsyncIterator[Pool]:
    """A pool on a fresh, migrated database."""
    db = Pool(fresh_dsn)
    await db.get()
    yield db
    await db.close()


@pytest.fixture
async def pds() -> AsyncIterator[str]:
    """An upstream that answers nothing but 404s: a hunt whose hits are withheld asks the PDS nothing."""
    async with serving(web.Application()) as url:
        yield url
