"""Credentials as the PDS and atproto clients make them, built here by hand (hmac and cryptography, not
the JOSE library the gate checks them with), so a test's token is independent of the code under test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hs256(payload: dict[str, Any], secret: str, header: dict[str, Any] | None = None) -> str:
    """A JWT signed the way the PDS signs access tokens: HMAC-SHA256 with ``PDS_JWT_SECRET``'s bytes."""
    signing_input = f"{_segment(header or {'typ': 'at+jwt', 'alg': 'HS256'})}.{_segment(payload)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def unsigned(payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A JWT-shaped token with a junk signature (what a forger without the secret can write)."""
    return f"{_segment(header or {'typ': 'at+jwt', 'alg': 'HS256'})}.{_segment(payload)}.c2ln"


@dataclass
class DpopKey:
    """A P-256 key that signs DPoP proofs (RFC 9449), and the nonce the server last handed out."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    nonce: str | None = None

    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }

    def thumbprint(self) -> str:
        """RFC 7638: SHA-256 of the required members, sorted, no white space."""
        jwk = self.jwk()
        canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
        return b64url(hashlib.sha256(canonical.encode()).digest())

    def proof(self, method: str, url: str, access_token: str | None = None, **override: Any) -> str:
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()}
        payload: dict[str, object] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if self.nonce:
            payload["nonce"] = self.nonce
        if access_token:
            payload["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
        payload.update(override)
        signing_input = f"{_segment(header)}.{_segment(payload)}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def remember(self, response: httpx.Response) -> None:
        if nonce := response.headers.get("DPoP-Nonce"):
            self.nonce = nonce


ALICE = "did:plc:alice"
# An access token naming ALICE, for fake upstreams that accept any credential (the real PDS would not).
ALICE_BEARER = "Bearer " + unsigned({"scope": "com.atproto.access", "sub": ALICE, "aud": "did:web:localhost"})
