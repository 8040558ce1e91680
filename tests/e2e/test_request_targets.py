"""Request targets the real PDS routes to uploadBlob although no HTTP client would send them, on a bare
socket: first straight to the PDS (proof that it stores what they carry), then through the gate
(judged on their path, or refused unread — never stored unjudged)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.endpoints import Endpoint, Images, User
from tests.e2e.gate_server import REJECT_ERROR, Gate
from tests.e2e.images import png, sha256
from tests.e2e.pds_server import Pds
from tests.support.cids import cid_of
from tests.support.raw_http import exchange

pytestmark = pytest.mark.e2e


def headers(token: str, body: bytes) -> dict[str, str]:
    return {
        "Host": "localhost",
        "Authorization": f"Bearer {token}",
        "Content-Type": "image/png",
        "Content-Length": str(len(body)),
    }


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def user(gate: Gate, make_user: Callable[[Endpoint], User]) -> User:
    return make_user(Endpoint("gate", gate.url, True))


@pytest.mark.parametrize(
    ("seed", "target"),
    [
        (41, b"/xrpc\\com.atproto.repo.uploadBlob#x"),
        (42, b"/xrpc/com.atproto.repo.uploadBlob#x"),
        (43, b"//u@h/xrpc/com.atproto.repo.uploadBlob#"),
        (44, b"http://h/xrpc\\com.atproto.repo.uploadBlob"),
    ],
)
async def test_spellings_the_pds_stores_are_refused_by_the_gate(
    gate: Gate, pds: Pds, pictures: Images, user: User, seed: int, target: bytes
) -> None:
    probe = png(seed)  # a clean picture of its own per spelling
    direct = await exchange(*address(pds.url), "POST", target, headers(user.access_jwt, probe), probe)
    assert direct.status == 200, direct.body  # the PDS routes this spelling to uploadBlob and stores it
    assert direct.json()["blob"]["ref"]["$link"] == cid_of(probe)

    before = pds.blob_files()
    for body in (pictures.banned, png(seed + 20)):
        refused = await exchange(*address(gate.url), "POST", target, headers(user.access_jwt, body), body)
        assert refused.status == 400
        assert refused.json()["error"] == "InvalidRequest"
    assert pds.blob_files() == before


async def test_an_absolute_form_upload_is_judged(gate: Gate, pds: Pds, pictures: Images, user: User) -> None:
    target = f"http://localhost:{pds.port}/xrpc/com.atproto.repo.uploadBlob".encode()
    before = pds.blob_files()
    banned = pictures.banned
    refused = await exchange(*address(gate.url), "POST", target, headers(user.access_jwt, banned), banned)
    assert (refused.status, refused.json()["error"]) == (400, REJECT_ERROR)
    assert pds.stored_since(before) == {}

    clean = png(70)
    stored = await exchange(*address(gate.url), "POST", target, headers(user.access_jwt, clean), clean)
    assert stored.status == 200, stored.body
    assert stored.json()["blob"]["ref"]["$link"] == cid_of(clean)
    assert sha256(clean) in pds.blob_files().values()
    assert [row["verdict"] for row in gate.decisions(cid_of(clean))] == ["forward"]
