"""Fixtures for the HMA matcher tests: a fake HMA on an ephemeral 127.0.0.1 port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import BASE_PDQ, OTHER_PDQ


@pytest.fixture
async def fake_hma() -> AsyncIterator[FakeHma]:
    """BANK_A holds BASE_PDQ, BANK_B holds OTHER_PDQ (two hashes: HMA's one-hash bug stays away)."""
    async with FakeHma() as hma:
        hma.add_bank("BANK_A")
        hma.add_bank("BANK_B")
        hma.add_signal("BANK_A", "pdq", BASE_PDQ)
        hma.add_signal("BANK_B", "pdq", OTHER_PDQ)
        yield hma
