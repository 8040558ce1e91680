from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gate.store.pool import Pool


@pytest.fixture
async def pool(fresh_dsn: str) -> AsyncIterator[Pool]:
    """A pool on a fresh, migrated database."""
    db = Pool(fresh_dsn)
    await db.get()
    yield db
    await db.close()
