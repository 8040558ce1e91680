"""Inter-service auth as the labeler: a short-lived JWT signed with the labeler's key, which a
moderation service checks against the labeler's DID document (atproto.com/specs/xrpc, "Inter-Service
Authentication").

The issuer is ``<labeler DID>#atproto_labeler``: the service fragment tells the receiver to check the
signature with the DID document's ``#atproto_label`` key (the one ``upload-gate labeler init`` publishes
and the gate holds) rather than the account's ``#atproto`` repository key, which stays with its PDS.
``lxm`` binds the token to one method and ``exp`` keeps it short, so a token seen in transit is good for
nothing else; ``jti`` makes each one unique.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

from atproto_crypto.consts import SECP256K1_JWT_ALG

from gate.labels.key import LabelerKey

TTL = 60  # seconds: the spec's "short" (the reference implementation's default)
LABELER_SERVICE = "atproto_labeler"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def issuer(labeler_did: str) -> str:
    return f"{labeler_did}#{LABELER_SERVICE}"


def service_jwt(key: LabelerKey, labeler_did: str, aud: str, lxm: str, *, now: float | None = None) -> str:
    """A compact JWS (ES256K, 64-byte low-S ``r‖s`` signature) for one call of ``lxm`` on ``aud``."""
    iat = int(time.time() if now is None else now)
    header = {"typ": "JWT", "alg": SECP256K1_JWT_ALG}
    payload = {
        "iss": issuer(labeler_did),
        "aud": aud,
        "iat": iat,
        "exp": iat + TTL,
        "lxm": lxm,
        "jti": secrets.token_hex(16),
    }
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
    )
    return f"{signing_input}.{_b64(key.sign(signing_input.encode('ascii')))}"
