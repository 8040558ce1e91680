"""Who an upload *claims* to come from, read from its token without verifying it.

Trust boundary: this is a claim, never an identity. Anyone can mint a JWT with any ``sub``; only the
PDS (or a check of the HS256 signature with the PDS's secret) can verify it. The claim is recorded for
operators and must never drive an account-level action on its own. The token itself is never logged.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from gate.types import Uploader

NONE = Uploader(did=None, method="none")


def _segment(seg: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _did(value: object) -> str | None:
    return value if isinstance(value, str) and value.startswith("did:") and len(value) < 256 else None


def claimed_uploader(authorization: str | None) -> Uploader:
    if not authorization:
        return NONE
    scheme, _, token = authorization.strip().partition(" ")
    parts = token.strip().split(".")
    if len(parts) != 3:
        return Uploader(did=None, method="unknown")
    header, payload = _segment(parts[0]), _segment(parts[1])
    if scheme.lower() == "dpop" or isinstance(payload.get("cnf"), dict):
        return Uploader(did=_did(payload.get("sub")), method="oauth")
    if payload.get("lxm") or (str(header.get("typ", "")).upper() == "JWT" and "iss" in payload):
        # Service auth (e.g. the video service): the uploader is the issuer.
        return Uploader(did=_did(payload.get("iss")), method="service_auth")
    if str(header.get("typ", "")).lower() == "at+jwt" or "sub" in payload:
        return Uploader(did=_did(payload.get("sub")), method="access_jwt")
    return Uploader(did=None, method="unknown")
