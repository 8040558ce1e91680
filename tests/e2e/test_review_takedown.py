"""Review actions against the real PDS: confirming a held upload whose uploader the PDS itself accepted
(the gate's empty-body probe with the upload's own credentials) takes that account down on the PDS; a
forged token that merely *claims* someone's DID gets no verdict, no held item and that account nothing.

Both go through the running gate's admin API with a token made by ``upload-gate admin token add``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.e2e import images
from tests.e2e.endpoints import Endpoint, User
from tests.e2e.gate_server import QUARANTINE_ERROR, Gate
from tests.e2e.pds_server import Pds

pytestmark = [pytest.mark.e2e]

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"


def held_variant(quality: int) -> bytes:
    """A near-duplicate of the banked "held" picture (seed 3) with its own bytes and CID."""
    img = images.picture(3).resize((images.SIZE - 8, images.SIZE - 8), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def upload(gate: Gate, body: bytes, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
    return httpx.post(gate.url + UPLOAD, content=body, headers=headers, timeout=30)


def admin_api(gate: Gate, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    r = httpx.request(
        method,
        gate.metrics_url + path,
        json=body,
        headers={"Authorization": f"Bearer {gate.admin_token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


def held_item(gate: Gate, body: bytes) -> dict[str, Any]:
    sha = hashlib.sha256(body).hexdigest()
    items: list[dict[str, Any]] = admin_api(gate, "GET", "/admin/api/items?state=held")["items"]
    [item] = [i for i in items if i["sha256"] == sha]
    return item


def subject_status(pds: Pds, did: str) -> dict[str, Any]:
    auth = base64.b64encode(f"admin:{pds.admin_password}".encode()).decode()
    r = httpx.get(
        pds.url + "/xrpc/com.atproto.admin.getSubjectStatus",
        params={"did": did},
        headers={"Authorization": f"Basic {auth}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def session(gate: Gate, user: User) -> httpx.Response:
    return httpx.get(
        gate.url + "/xrpc/com.atproto.server.getSession",
        headers={"Authorization": f"Bearer {user.access_jwt}"},
        timeout=30,
    )


def forged_token(did: str) -> str:
    """An access-token-shaped JWT claiming ``did``, signed with a key the PDS never had."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    head = b64(json.dumps({"typ": "at+jwt", "alg": "HS256"}).encode())
    claims = {
        "scope": "com.atproto.access",
        "sub": did,
        "exp": int(time.time()) + 600,
        "iat": int(time.time()),
    }
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(b"not-the-pds-secret", f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_confirm_takes_a_verified_uploader_down_on_the_pds(
    gate: Gate, pds: Pds, make_user: Callable[[Endpoint], User]
) -> None:
    user = make_user(Endpoint("gate", gate.url, True))
    body = held_variant(85)
    r = upload(gate, body, user.access_jwt)
    assert (r.status_code, r.json()["error"]) == (400, QUARANTINE_ERROR)

    item = held_item(gate, body)
    assert (item["did"], item["verified_did"], item["verified_how"]) == (user.did, user.did, "pds")
    assert subject_status(pds, user.did)["takedown"]["applied"] is False
    assert session(gate, user).status_code == 200

    answer = admin_api(gate, "POST", f"/admin/api/items/{item['decision_id']}/confirm", {"takedown": True})
    assert (answer["item"]["state"], answer["takedown"]) == ("confirmed", "applied")

    status = subject_status(pds, user.did)
    assert status["takedown"] == {"applied": True, "ref": f"upload-gate:{item['decision_id']}"}
    # The PDS now refuses the account's own session.
    r = session(gate, user)
    # (0.4.217 answers "Could not find user info for account": a taken-down account has no active session.)
    assert r.status_code == 400 and user.did in r.json()["message"], r.text


def test_a_forged_claim_never_takes_the_claimed_account_down(
    gate: Gate, pds: Pds, make_user: Callable[[Endpoint], User]
) -> None:
    victim = make_user(Endpoint("gate", gate.url, True))
    body = held_variant(70)
    r = upload(gate, body, forged_token(victim.did))
    # The PDS's own refusal of the token, as a clean picture gets it: no verdict is revealed.
    assert (r.status_code, r.json()["error"]) == (400, "InvalidToken"), r.text

    sha = hashlib.sha256(body).hexdigest()
    items = admin_api(gate, "GET", "/admin/api/items?state=held")["items"]
    assert [i for i in items if i["sha256"] == sha] == []  # nothing held, so nothing to confirm
    assert subject_status(pds, victim.did)["takedown"]["applied"] is False
    victim.client.com.atproto.server.get_session()  # the victim's account works as before
