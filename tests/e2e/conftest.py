"""Session-wide servers for the end-to-end suite: one real PDS (and later the gate and the fronts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import pds_server


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def pds(e2e_dir: Path) -> Iterator[pds_server.Pds]:
    server = pds_server.start(e2e_dir)
    try:
        yield server
    finally:
        server.proc.stop()
