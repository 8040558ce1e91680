"""Session-wide servers for the end-to-end suite, each started once: the real PDS, the gate in front of
it, and (one at a time) each TLS front in front of the gate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e import fronts, gate_server, images, pds_server
from tests.e2e.endpoints import FRONTS, Endpoint, Images, User, new_user


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


@pytest.fixture(scope="session")
def pictures(e2e_dir: Path) -> Images:
    folder = e2e_dir / "images"
    folder.mkdir()
    pics = Images(
        clean=[
            images.png(seed) for seed in (1, 5, 6, 7, 8, 9, 10, 11, 12, 13)
        ],  # two per front, all distinct
        banned=images.png(2),
        banned_near=images.near_duplicate(2),
        held=images.png(3),
        folder=folder,
    )
    (folder / "banned.png").write_bytes(pics.banned)
    (folder / "held.png").write_bytes(pics.held)
    return pics


@pytest.fixture(scope="session")
def gate(e2e_dir: Path, pds: pds_server.Pds, pictures: Images) -> Iterator[gate_server.Gate]:
    server = gate_server.start(
        e2e_dir,
        pds.url,
        {"banned": [pictures.folder / "banned.png"], "held": [pictures.folder / "held.png"]},
        pds_admin_password=pds.admin_password,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def checking_gate(e2e_dir: Path, pds: pds_server.Pds, pictures: Images) -> Iterator[gate_server.Gate]:
    """A second gate, given the PDS's env file (GATE_PDS_ENV_FILE) as an operator of an installer-based
    PDS gives it: it checks credentials before reading a body."""
    server = gate_server.start(
        e2e_dir,
        pds.url,
        {"banned": [pictures.folder / "banned.png"], "held": [pictures.folder / "held.png"]},
        name="checking-gate",
        extra_env={"GATE_PDS_ENV_FILE": str(pds.env_file)},
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=FRONTS)
def front(
    request: pytest.FixtureRequest, e2e_dir: Path, pds: pds_server.Pds, gate: gate_server.Gate
) -> Iterator[Endpoint]:
    """Where clients connect: the gate itself, or a real nginx / Caddy with the shipped config."""
    name: str = request.param
    if name == "gate":
        yield Endpoint(name, gate.url, True)
        return
    if name.startswith("caddy"):
        variant = "Caddyfile.whole-site" if name.endswith("whole-site") else "Caddyfile"
        server = fronts.start_caddy(variant, e2e_dir, gate.port, pds.port)
    else:
        variant = "upload-gate-whole-site.conf" if name.endswith("whole-site") else "upload-gate.conf"
        server = fronts.start_nginx(variant, e2e_dir, gate.port, pds.port)
    try:
        yield Endpoint(name, server.url, server.ssl_context)
    finally:
        server.proc.stop()


@pytest.fixture
def make_user() -> Iterator[Callable[[Endpoint], User]]:
    """Create accounts through an endpoint; their HTTP clients are closed after the test."""
    made: list[User] = []

    def make(endpoint: Endpoint) -> User:
        made.append(new_user(endpoint))
        return made[-1]

    yield make
    for user in made:
        user.client.request.close()
