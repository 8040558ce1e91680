"""Uploads the gate must judge however they arrive: quarantine, compressed bodies, service auth.

These talk to the gate directly (the fronts are covered in test_fronts.py); the PDS behind it is the
real ``@atproto/pds`` and its blob store on disk is the evidence that nothing refused was stored.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable

import httpx
import pytest
from atproto_client.exceptions import BadRequestError

from tests.e2e.endpoints import Endpoint, Images, User
from tests.e2e.gate_server import QUARANTINE_ERROR, REJECT_ERROR, Gate
from tests.e2e.images import png, sha256
from tests.e2e.pds_server import Pds
from tests.support.cids import cid_of

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"),
]

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"


@pytest.fixture
def direct(gate: Gate) -> Endpoint:
    return Endpoint("gate", gate.url, True)


def upload(gate: Gate, body: bytes, token: str, **headers: str) -> httpx.Response:
    return httpx.post(
        gate.url + UPLOAD,
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "image/png", **headers},
        timeout=30,
    )


def test_quarantined_image_is_held_recorded_and_never_stored(
    direct: Endpoint, gate: Gate, pds: Pds, pictures: Images, make_user: Callable[[Endpoint], User]
) -> None:
    user = make_user(direct)
    before = pds.blob_files()

    with pytest.raises(BadRequestError) as held:
        user.post_image(pictures.held)

    assert held.value.response is not None
    assert held.value.response.content.error == QUARANTINE_ERROR
    assert pds.stored_since(before) == {}
    # Not under this account at all (the session's PDS is shared: other suites post banked pictures to it
    # around the gate, under their own accounts).
    mine = {h for path, h in pds.blob_files().items() if user.did in path.parts}
    assert sha256(pictures.held) not in mine
    rows = gate.decisions(cid_of(pictures.held))
    assert [row["verdict"] for row in rows] == ["quarantine"]


def test_gzip_encoded_upload_is_decoded_and_judged(
    direct: Endpoint, gate: Gate, pds: Pds, pictures: Images, make_user: Callable[[Endpoint], User]
) -> None:
    user = make_user(direct)
    before = pds.blob_files()
    refused = upload(gate, gzip.compress(pictures.banned), user.access_jwt, **{"Content-Encoding": "gzip"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == REJECT_ERROR
    assert pds.stored_since(before) == {}

    # A clean gzip upload is forwarded and stored as its decoded bytes, under the CID the gate recorded.
    clean = png(21)
    accepted = upload(gate, gzip.compress(clean), user.access_jwt, **{"Content-Encoding": "gzip"})
    assert accepted.status_code == 200, accepted.text
    cid = accepted.json()["blob"]["ref"]["$link"]
    assert cid == cid_of(clean)
    assert [row["verdict"] for row in gate.decisions(cid)] == ["forward"]


def test_service_auth_upload_is_scanned_like_any_other(
    direct: Endpoint, gate: Gate, pds: Pds, pictures: Images, make_user: Callable[[Endpoint], User]
) -> None:
    """How the video service delivers uploads: a service-auth JWT bound to uploadBlob (lxm)."""
    user = make_user(direct)
    pds_did = user.client.com.atproto.server.describe_server().did
    token = user.client.com.atproto.server.get_service_auth(
        {"aud": pds_did, "lxm": "com.atproto.repo.uploadBlob"}
    ).token
    before = pds.blob_files()

    refused = upload(gate, pictures.banned, token)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == REJECT_ERROR
    assert pds.stored_since(before) == {}

    clean = png(22)
    accepted = upload(gate, clean, token)
    assert accepted.status_code == 200, accepted.text  # the PDS took the service token: a real upload
    assert accepted.json()["blob"]["ref"]["$link"] == cid_of(clean)
    assert [row["verdict"] for row in gate.decisions(cid_of(clean))] == ["forward"]
