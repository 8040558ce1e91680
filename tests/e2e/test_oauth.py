"""OAuth with DPoP through the gate: the proof binds method and URL, so the gate must forward both as
received, and the PDS's nonce challenge (a 401 with headers) must reach the client unchanged."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.endpoints import Endpoint, Images, User, new_user
from tests.e2e.gate_server import REJECT_ERROR, Gate
from tests.e2e.images import png
from tests.e2e.oauth import OAuthSession, obtain_token
from tests.e2e.pds_server import Pds
from tests.support.cids import cid_of
from tests.support.tokens import DpopKey

pytestmark = pytest.mark.e2e

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"


@pytest.fixture(scope="module")
def oauth_user(gate: Gate, pds: Pds) -> tuple[User, OAuthSession]:
    """An account whose whole OAuth authorization flow (PAR, sign-in, consent, token) ran through the gate."""
    user = new_user(Endpoint("gate", gate.url, True))
    user.client.request.close()  # only the password is needed from here on
    return user, obtain_token(gate.url, pds.public_url, user.handle, user.password)


def dpop_upload(
    gate: Gate, pds: Pds, session: OAuthSession, key: DpopKey, body: bytes, *, htu_path: str = UPLOAD
) -> httpx.Response:
    return httpx.post(
        gate.url + UPLOAD,
        content=body,
        headers={
            "Authorization": f"DPoP {session.access_token}",
            "DPoP": key.proof("POST", pds.public_url + htu_path, session.access_token),
            "Content-Type": "image/png",
        },
        timeout=30,
    )


def test_dpop_nonce_challenge_reaches_the_client_then_the_upload_succeeds(
    gate: Gate, pds: Pds, oauth_user: tuple[User, OAuthSession]
) -> None:
    user, session = oauth_user
    assert session.sub == user.did
    image = png(31)
    key = DpopKey(key=session.dpop.key)  # a client that has no nonce yet

    challenged = dpop_upload(gate, pds, session, key, image)

    assert challenged.status_code == 401, challenged.text
    assert challenged.json()["error"] == "use_dpop_nonce"
    assert 'error="use_dpop_nonce"' in challenged.headers["WWW-Authenticate"]
    assert challenged.headers["DPoP-Nonce"]
    key.remember(challenged)

    accepted = dpop_upload(gate, pds, session, key, image)  # the client re-sends the whole upload

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["blob"]["ref"]["$link"] == cid_of(image)
    verdicts = [row["verdict"] for row in gate.decisions(cid_of(image))]
    assert verdicts and set(verdicts) == {"forward"}


def test_dpop_proof_is_really_checked_and_banned_oauth_uploads_are_refused(
    gate: Gate, pds: Pds, pictures: Images, oauth_user: tuple[User, OAuthSession]
) -> None:
    _, session = oauth_user
    key = DpopKey(key=session.dpop.key, nonce=session.dpop.nonce)
    first = dpop_upload(gate, pds, session, key, png(32))
    key.remember(first)
    if first.status_code == 401:  # the nonce rotated: one retry, as clients do
        first = dpop_upload(gate, pds, session, key, png(32))
    assert first.status_code == 200, first.text

    # A proof for another URL is refused by the PDS: the success above was the htu check passing.
    wrong = dpop_upload(gate, pds, session, key, png(33), htu_path="/xrpc/com.atproto.repo.uploadblob")
    assert wrong.status_code in (400, 401), wrong.text

    banned = dpop_upload(gate, pds, session, key, pictures.banned)
    assert banned.status_code == 400, banned.text
    assert banned.json()["error"] == REJECT_ERROR
