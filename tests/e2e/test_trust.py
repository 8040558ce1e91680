"""Trust before judgement, against the real PDS: no verdict, no evidence and no DID for a caller the PDS
does not accept, and every caller it does accept gets the verdict.

Each test runs through two gates: the session gate (the PDS alone judges credentials, after the body is
read) and ``checking_gate``, given the PDS's env file (credentials it can check are checked before a byte
of the body is read). For every invalid credential a banked and a clean picture must get byte-identical
answers: anything else would tell a stranger whether a picture is in a bank.
"""

from __future__ import annotations

import base64
import itertools
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e import images
from tests.e2e.endpoints import Endpoint, Images, User, new_user
from tests.e2e.gate_server import REJECT_ERROR, Gate
from tests.e2e.oauth import OAuthSession, obtain_token
from tests.e2e.pds_server import Pds
from tests.e2e.procs import LOOPBACK
from tests.support.boot import gate_command
from tests.support.cids import cid_of
from tests.support.tokens import DpopKey, b64url, hs256

pytestmark = [pytest.mark.e2e]

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
GATES = ("plain", "checking")
SEEDS = itertools.count(700)  # every clean picture of this module is its own (its own CID)


@pytest.fixture(params=GATES)
def any_gate(request: pytest.FixtureRequest) -> Gate:
    """The gate under test: without the PDS's secret, then with it."""
    fixture = "gate" if request.param == "plain" else "checking_gate"
    gate: Gate = request.getfixturevalue(fixture)
    return gate


@pytest.fixture(scope="module")
def account(gate: Gate) -> Iterator[User]:
    user = new_user(Endpoint("gate", gate.url, True))
    yield user
    user.client.request.close()


@pytest.fixture(scope="module")
def oauth(gate: Gate, pds: Pds, account: User) -> OAuthSession:
    return obtain_token(gate.url, pds.public_url, account.handle, account.password)


def claims(did: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"scope": "com.atproto.access", "sub": did, "aud": "did:web:localhost", "iat": now,
            "exp": now + 600, **extra}  # fmt: skip


def es256k_service_token(iss: str, aud: str) -> str:
    """A service-auth JWT for uploadBlob signed by a key that is not in ``iss``'s DID document."""
    key = ec.generate_private_key(ec.SECP256K1())
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    now = int(time.time())
    head = b64url(b'{"typ":"JWT","alg":"ES256K"}')
    body = b64url(
        f'{{"iss":"{iss}","aud":"{aud}","lxm":"com.atproto.repo.uploadBlob","exp":{now + 60},"iat":{now}}}'.encode()
    )
    r, s = decode_dss_signature(key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{head}.{body}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@dataclass(frozen=True)
class Credentials:
    """The request headers of one credential (a DPoP proof is made fresh per request)."""

    name: str
    make: Callable[[], dict[str, str]]


def invalid_credentials(pds: Pds, victim: User, oauth: OAuthSession) -> list[Credentials]:
    secret = pds.jwt_secret
    admin = base64.b64encode(f"admin:{pds.admin_password}".encode()).decode()
    spent = DpopKey(key=oauth.dpop.key, nonce=oauth.dpop.nonce)
    spent_proof = spent.proof("POST", pds.public_url + UPLOAD, oauth.access_token)
    wrong_url = DpopKey(key=oauth.dpop.key, nonce=oauth.dpop.nonce)

    def bearer(token: str) -> Callable[[], dict[str, str]]:
        return lambda: {"Authorization": f"Bearer {token}"}

    return [
        Credentials("Bearer garbage", bearer("garbage")),
        Credentials("Bearer a.b.c", bearer("a.b.c")),
        Credentials("wrong secret naming the victim", bearer(hs256(claims(victim.did), "not-the-pds-secret"))),
        Credentials("expired", bearer(hs256(claims(victim.did, exp=int(time.time()) - 3600), secret))),
        Credentials("refresh token", bearer(hs256(claims(victim.did), secret, {"typ": "refresh+jwt", "alg": "HS256"}))),
        Credentials("another PDS's token", bearer(hs256(claims(victim.did, aud="did:web:elsewhere"), secret))),
        Credentials("forged service auth", bearer(es256k_service_token(victim.did, "did:web:localhost"))),
        Credentials("Basic with the PDS admin password", lambda: {"Authorization": f"Basic {admin}"}),
        Credentials("DPoP garbage", lambda: {"Authorization": "DPoP garbage", "DPoP": "garbage"}),
        Credentials("OAuth, proof for another URL", lambda: {
            "Authorization": f"DPoP {oauth.access_token}",
            "DPoP": wrong_url.proof("POST", pds.public_url + "/xrpc/com.atproto.repo.createRecord", oauth.access_token),
        }),
        Credentials("OAuth, a spent proof", lambda: {"Authorization": f"DPoP {oauth.access_token}", "DPoP": spent_proof}),
    ]  # fmt: skip


def post(gate: Gate, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        gate.url + UPLOAD, content=body, headers={"Content-Type": "image/png", **headers}, timeout=30
    )


def answer(r: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Everything a client sees, but the clock (and the PDS's rotating DPoP nonce value)."""
    headers = [
        (k.lower(), "<nonce>" if k.lower() == "dpop-nonce" else v)
        for k, v in r.headers.multi_items()
        if k.lower() != "date"
    ]
    return r.status_code, r.content, sorted(headers)


def held_shas(gate: Gate) -> set[str]:
    r = httpx.get(
        gate.metrics_url + "/admin/api/items?state=held&limit=500",
        headers={"Authorization": f"Bearer {gate.admin_token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return {item["sha256"] for item in r.json()["items"]}


def decisions_naming(gate: Gate, did: str) -> list[str]:
    result = gate_command("decisions", "--did", did, "--json", env=gate.env)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.strip()]


def test_an_invalid_credential_learns_nothing_and_leaves_nothing(
    any_gate: Gate, pds: Pds, pictures: Images, account: User, oauth: OAuthSession,
    make_user: Callable[[Endpoint], User],
) -> None:  # fmt: skip
    gate = any_gate
    victim = make_user(Endpoint("gate", gate.url, True))
    # Spend the "spent" proof first, on a real upload (so the PDS has seen its jti).
    creds = invalid_credentials(pds, victim, oauth)
    spent = next(c for c in creds if c.name == "OAuth, a spent proof").make()
    first = post(gate, images.png(next(SEEDS)), spent)
    if first.status_code == 401:  # the nonce rotated since the token was issued: refresh both proofs
        oauth.dpop.remember(first)
        creds = invalid_credentials(pds, victim, oauth)
        spent = next(c for c in creds if c.name == "OAuth, a spent proof").make()
        first = post(gate, images.png(next(SEEDS)), spent)
    assert first.status_code == 200, first.text
    before = pds.blob_files()
    held_before = held_shas(gate)

    for cred in creds:
        clean = images.png(next(SEEDS))
        banked, fresh = (
            answer(post(gate, pictures.banned, cred.make())),
            answer(post(gate, clean, cred.make())),
        )
        assert banked == fresh, cred.name
        assert banked[0] in (400, 401, 403, 500), (cred.name, banked)
        assert gate.decisions(cid_of(clean)) == [], cred.name

    assert pds.stored_since(before) == {}
    assert held_shas(gate) == held_before
    assert decisions_naming(gate, victim.did) == []


def test_with_the_secret_an_invalid_token_is_answered_before_the_body_is_read(
    checking_gate: Gate, gate: Gate, account: User
) -> None:
    """Headers announcing 50 MB and no body: the checking gate answers at once with the PDS's refusal."""
    forged = hs256(claims(account.did), "not-the-pds-secret")
    head = (
        f"POST {UPLOAD} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {forged}\r\n"
        f"Content-Type: image/png\r\nContent-Length: {50 * 1024 * 1024}\r\n\r\n"
    ).encode()
    with socket.create_connection((LOOPBACK, checking_gate.port), timeout=10) as sock:
        sock.sendall(head)
        seen = b""
        while b"InvalidToken" not in seen:
            chunk = sock.recv(65536)
            assert chunk, seen
            seen += chunk
    assert seen.startswith(b"HTTP/1.1 400"), seen[:200]
    # The gate without the secret waits for the body it must judge before anyone is asked.
    with socket.create_connection((LOOPBACK, gate.port), timeout=2) as sock:
        sock.sendall(head)
        with pytest.raises(TimeoutError):
            sock.recv(65536)


def legacy(account: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.access_jwt}"}


def service_auth(account: User) -> dict[str, str]:
    pds_did = account.client.com.atproto.server.describe_server().did
    token = account.client.com.atproto.server.get_service_auth(
        {"aud": pds_did, "lxm": "com.atproto.repo.uploadBlob"}
    ).token
    return {"Authorization": f"Bearer {token}"}


def dpop_post(gate: Gate, pds: Pds, oauth: OAuthSession, body: bytes) -> httpx.Response:
    """An OAuth upload as a client makes it, answering one nonce challenge by sending it all again."""
    for _ in range(2):
        proof = oauth.dpop.proof("POST", pds.public_url + UPLOAD, oauth.access_token)
        r = post(gate, body, {"Authorization": f"DPoP {oauth.access_token}", "DPoP": proof})
        oauth.dpop.remember(r)
        if r.status_code != 401:
            return r
    return r


@pytest.mark.parametrize("kind", ["legacy", "oauth", "service_auth"])
def test_a_real_caller_gets_the_verdict_recorded_under_its_verified_did(
    any_gate: Gate, pds: Pds, pictures: Images, account: User, oauth: OAuthSession, kind: str
) -> None:
    gate = any_gate
    clean = images.png(next(SEEDS))

    def send(body: bytes) -> httpx.Response:
        if kind == "oauth":
            return dpop_post(gate, pds, oauth, body)
        return post(gate, body, legacy(account) if kind == "legacy" else service_auth(account))

    before = pds.blob_files()
    refused = send(pictures.banned_near)
    assert (refused.status_code, refused.json()["error"]) == (400, REJECT_ERROR), refused.text
    if kind == "oauth":  # the PDS's next nonce reaches the client, readable by a browser script too
        assert refused.headers["DPoP-Nonce"]
        assert "DPoP-Nonce" in refused.headers["Access-Control-Expose-Headers"]
    assert images.sha256(pictures.banned_near) not in pds.blob_files().values()
    rows = [r for r in gate.decisions(cid_of(pictures.banned_near)) if r["did"] == account.did]
    assert rows and rows[-1]["verdict"] == "reject"
    assert (rows[-1]["did_verified"], rows[-1]["verified_how"], rows[-1]["claimed_did"]) == (
        True,
        "pds",
        account.did,
    )

    stored = send(clean)
    assert stored.status_code == 200, stored.text
    assert stored.json()["blob"]["ref"]["$link"] == cid_of(clean)
    assert images.sha256(clean) in pds.stored_since(before).values()
    [row] = gate.decisions(cid_of(clean))
    assert (row["verdict"], row["did"], row["verified_how"]) == ("forward", account.did, "pds")
