"""Which requests the shipped fronts send to the gate: every spelling of the judged routes, and — for
the default configs — nothing else.

A recording stand-in takes the gate's slot behind real nginx and Caddy running the shipped files; the
real PDS stays behind them. A spelling of ``uploadBlob`` that a front sent straight to the PDS would
be a hole: the stand-in would not see it, and the PDS (given a valid token and the banned bytes) would
store them. First, the PDS itself shows which odd spellings it really accepts as an upload.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import fronts
from tests.e2e.endpoints import Endpoint, Images, User, new_user
from tests.e2e.images import png
from tests.e2e.pds_server import Pds
from tests.e2e.spellings import GET_BLOB_SPELLINGS, PDS_UPLOAD_SPELLINGS, UPLOAD_SPELLINGS
from tests.e2e.stand_in import StandIn, stand_in
from tests.e2e.wire import send
from tests.support.cids import cid_of

pytestmark = [pytest.mark.e2e]

# Routes the default fronts send straight to the PDS.
PDS_ONLY = [
    ("GET", "/xrpc/_health"),
    ("GET", "/xrpc/com.atproto.server.describeServer"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("POST", "/xrpc/com.atproto.repo.createRecord"),
]
VARIANTS = {
    "nginx": ("nginx", "upload-gate.conf"),
    "nginx-whole-site": ("nginx", "upload-gate-whole-site.conf"),
    "caddy": ("caddy", "Caddyfile"),
    "caddy-whole-site": ("caddy", "Caddyfile.whole-site"),
}


@pytest.fixture(scope="module")
def uploader(pds: Pds) -> Iterator[User]:
    """An account made directly on the PDS (no front, no gate): its token is valid there."""
    user = new_user(Endpoint("pds", pds.url, True))
    yield user
    user.client.request.close()


def bearer(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access_jwt}", "Content-Type": "image/png"}


@pytest.mark.parametrize("target", PDS_UPLOAD_SPELLINGS)
def test_the_pds_accepts_these_spellings_as_uploads(pds: Pds, uploader: User, target: str) -> None:
    """The facts behind the table: each spelling, sent straight to the PDS, stores the upload."""
    image = png(80 + PDS_UPLOAD_SPELLINGS.index(target))
    answer = send(Endpoint("pds", pds.url, True), "POST", target, bearer(uploader), image)
    assert answer.status == 200, answer.body
    assert cid_of(image).encode() in answer.body


@pytest.fixture(scope="module")
def slot() -> Iterator[StandIn]:
    with stand_in() as server:
        yield server


@pytest.fixture(scope="module", params=list(VARIANTS))
def routed_front(
    request: pytest.FixtureRequest, e2e_dir: Path, pds: Pds, slot: StandIn
) -> Iterator[tuple[str, Endpoint]]:
    kind, variant = VARIANTS[request.param]
    workdir = e2e_dir / f"routing-{request.param}"
    workdir.mkdir()
    start = fronts.start_nginx if kind == "nginx" else fronts.start_caddy
    front = start(variant, workdir, slot.port, pds.port)
    try:
        yield request.param, Endpoint(front.name, front.url, front.ssl_context)
    finally:
        front.proc.stop()


def test_every_spelling_of_the_judged_routes_reaches_the_gate(
    routed_front: tuple[str, Endpoint], slot: StandIn, pds: Pds, uploader: User, pictures: Images
) -> None:
    name, front = routed_front
    before = pds.blob_files()
    requests = [("POST", target, pictures.banned) for target in UPLOAD_SPELLINGS] + [
        ("GET", spelling.format(did=uploader.did, cid=cid_of(pictures.banned)), b"")
        for spelling in GET_BLOB_SPELLINGS
    ]
    missed: list[tuple[str, int, str]] = []  # (target, status, who answered)
    for i, (method, target, body) in enumerate(requests):
        probe = f"{name}-{i}"
        answer = send(front, method, target, {**bearer(uploader), "X-Probe": probe}, body)
        if probe not in slot.probes():
            who = "the PDS" if answer.headers.get("x-powered-by") == "Express" else "the front"
            missed.append((target, answer.status, who))
    assert missed == [], f"{name} sent these past the gate"
    assert pds.blob_files() == before, "the PDS stored an upload that never passed the gate"


def test_the_default_fronts_keep_the_gate_out_of_everything_else(
    routed_front: tuple[str, Endpoint], slot: StandIn
) -> None:
    name, front = routed_front
    for i, (method, target) in enumerate(PDS_ONLY):
        probe = f"{name}-other-{i}"
        answer = send(front, method, target, {"X-Probe": probe, "Content-Type": "application/json"})
        if name.endswith("whole-site"):
            assert probe in slot.probes(), target  # the option: every request through the gate
        else:
            assert probe not in slot.probes(), target
            assert answer.headers.get("x-powered-by") == "Express", (target, answer)  # the PDS answered
