"""Offline DID verification: only an unexpired HS256 access token signed with the PDS's secret passes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from gate.quarantine.verifier import verify_hs256

SECRET = "0123456789abcdef0123456789abcdef"
DID = "did:plc:abcdefghijklmnopqrstuvwx"


def b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode().rstrip("=")


def jwt(payload: dict[str, object], *, secret: str = SECRET, header: dict[str, object] | None = None) -> str:
    head = b64(json.dumps(header or {"typ": "at+jwt", "alg": "HS256"}).encode())
    body = b64(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def claims(**extra: object) -> dict[str, object]:
    return {
        "scope": "com.atproto.access",
        "sub": DID,
        "aud": "did:web:pds",
        "exp": int(time.time()) + 600,
        **extra,
    }


def test_a_genuine_access_token_verifies() -> None:
    assert verify_hs256(jwt(claims()), SECRET) == DID


def test_an_oauth_access_token_verifies() -> None:
    assert verify_hs256(jwt(claims(cnf={"jkt": "thumb"}, client_id="https://app")), SECRET) == DID


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("other secret", jwt(claims(), secret="f" * 32)),
        ("expired", jwt(claims(exp=int(time.time()) - 3600))),
        ("no exp", jwt({"sub": DID})),
        ("alg none", jwt(claims(), header={"typ": "at+jwt", "alg": "none"})),
        ("refresh token", jwt(claims(), header={"typ": "refresh+jwt", "alg": "HS256"})),
        ("not a did", jwt(claims(sub="alice"))),
        ("two segments", "a.b"),
        ("garbage", "!!!.###.$$$"),
    ],
)
def test_anything_else_stays_a_claim(name: str, token: str) -> None:
    assert verify_hs256(token, SECRET) is None


def test_a_tampered_payload_fails() -> None:
    head, _, sig = jwt(claims()).split(".")
    forged = b64(json.dumps(claims(sub="did:plc:victim")).encode())
    assert verify_hs256(f"{head}.{forged}.{sig}", SECRET) is None
