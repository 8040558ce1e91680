"""``UploaderVerifier``: turns the DID an upload's token *claims* into a verified one, or says it cannot.

Run only for held uploads (the quarantine branch of the pipeline), never on the forward path. Two ways,
in this order:

1. The operator gave the PDS's ``PDS_JWT_SECRET``: check the token's HS256 signature and expiry offline.
   This covers legacy access JWTs and OAuth access tokens (both are HS256 with that secret).
2. Otherwise, for a plain ``Bearer`` token only: ask the PDS ``com.atproto.server.getSession`` with the
   same token and take the DID it answers. A ``DPoP`` request is never replayed: its proof is single-use
   and bound to the upload request.

Trust boundary: the token is attacker-supplied. The ``alg`` header is not trusted (only HS256 is
accepted, so ``none`` or an asymmetric-key confusion cannot pass); the token is never logged or stored.
Service-auth tokens (ES256K, signed by the uploader's repo key) stay claims: verifying them needs a DID
document resolution this gate does not do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import aiohttp
from yarl import URL

from gate import metrics
from gate.identity import claimed_uploader
from gate.types import Uploader

log = logging.getLogger(__name__)

LEEWAY = 30  # seconds of clock skew tolerated on exp


def _b64(seg: str) -> bytes:
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def _json(seg: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64(seg))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def verify_hs256(token: str, secret: str, now: float | None = None) -> str | None:
    """The token's ``sub`` DID when it is an unexpired access token signed with ``secret``, else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header, payload = _json(parts[0]), _json(parts[1])
    # Only access tokens: refresh tokens ("refresh+jwt") are signed with the same secret but never
    # authorise an upload; a DID proven by one would be proven by the wrong kind of credential.
    if header.get("alg") != "HS256" or str(header.get("typ", "")).lower() != "at+jwt":
        return None
    try:
        signature = _b64(parts[2])
    except (binascii.Error, ValueError):
        return None
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        return None
    exp = payload.get("exp")
    if not isinstance(exp, int | float) or exp + LEEWAY < (now if now is not None else time.time()):
        return None
    sub = payload.get("sub")
    return sub if isinstance(sub, str) and sub.startswith("did:") else None


class UploaderVerifier:
    def __init__(self, pds: URL, jwt_secret: str | None, timeout: float = 3.0) -> None:
        self.pds = pds
        self._secret = jwt_secret
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def verify(self, authorization: str) -> tuple[Uploader, str]:
        """(uploader, how): ``how`` is ``jwt_secret``, ``get_session`` or ``none`` (a claim only)."""
        claimed = claimed_uploader(authorization)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if self._secret is not None:
            did = verify_hs256(token, self._secret)
            return self._result(claimed, did, "jwt_secret")
        if scheme.lower() == "bearer" and claimed.method == "access_jwt":
            return self._result(claimed, await self._get_session(token), "get_session")
        metrics.UPLOADER_VERIFICATIONS.labels("none", "unverifiable").inc()
        return claimed, "none"

    @staticmethod
    def _result(claimed: Uploader, did: str | None, how: str) -> tuple[Uploader, str]:
        if did is None:
            metrics.UPLOADER_VERIFICATIONS.labels(how, "refused").inc()
            return claimed, "none"
        if claimed.did is not None and did != claimed.did:
            # Cannot happen with an honest PDS; the verified identity wins over the claim.
            log.warning("uploader claim differs from the verified DID; recording the verified one")
        metrics.UPLOADER_VERIFICATIONS.labels(how, "verified").inc()
        return Uploader(did=did, method=claimed.method, verified=True), how

    async def _get_session(self, token: str) -> str | None:
        if self._session is None:
            return None
        url = self.pds / "xrpc" / "com.atproto.server.getSession"
        try:
            async with self._session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                if resp.status != 200:
                    return None
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("getSession for a held upload failed: %s", type(exc).__name__)
            return None
        did = body.get("did") if isinstance(body, dict) else None
        return did if isinstance(did, str) and did.startswith("did:") else None
