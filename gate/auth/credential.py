"""The credential an upload arrives with, read the way the PDS reads it, and who it *claims* to be.

Trust boundary: every field here is attacker-supplied and unverified. The token's subject is a claim;
the gate names a DID in a record only after the PDS has accepted the credential (see gate.pipeline).
Tokens are parsed with joserfc (never by hand) and are never logged or stored.

The PDS's rules, mirrored so a claim is read as the PDS would read it (@atproto/pds auth-verifier.ts):
``Authorization`` is exactly ``TYPE TOKEN`` (one space), TYPE case-insensitive among Basic, Bearer and
DPoP; a Bearer token whose payload has ``lxm`` is service auth (the uploader is ``iss``), any other
Bearer token is an access token and a DPoP token an OAuth access token (the uploader is ``sub``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError


class Scheme(StrEnum):
    BEARER = "bearer"
    DPOP = "dpop"
    BASIC = "basic"
    OTHER = "other"  # a TYPE the PDS does not know: it answers InvalidToken
    MALFORMED = "malformed"  # not ``TYPE TOKEN``: the PDS answers InvalidToken


class Kind(StrEnum):
    """What the token is, by the PDS's rules; recorded as the decision's ``did_method``."""

    ACCESS_JWT = "access_jwt"
    OAUTH = "oauth"
    SERVICE_AUTH = "service_auth"
    UNKNOWN = "unknown"


MAX_DID = 2048  # a DID longer than this is not one anybody registered


@dataclass(frozen=True, slots=True)
class Credential:
    scheme: Scheme
    token: str = field(repr=False)
    proofs: tuple[str, ...] = field(default=(), repr=False)  # the DPoP header(s), as received
    header: Mapping[str, Any] = field(default_factory=dict, repr=False)  # unverified JOSE header
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)  # unverified payload

    @classmethod
    def parse(cls, authorization: str, dpop: list[str] | tuple[str, ...] = ()) -> Credential:
        parts = authorization.split(" ")
        if len(parts) != 2:
            return cls(Scheme.MALFORMED, "", tuple(dpop))
        try:
            scheme = Scheme(parts[0].lower())
        except ValueError:
            scheme = Scheme.OTHER
        if scheme not in (Scheme.BEARER, Scheme.DPOP, Scheme.BASIC):
            scheme = Scheme.OTHER
        header, claims = _unverified(parts[1]) if scheme in (Scheme.BEARER, Scheme.DPOP) else ({}, {})
        return cls(scheme, parts[1], tuple(dpop), header, claims)

    @property
    def kind(self) -> Kind:
        if self.scheme is Scheme.DPOP:
            return Kind.OAUTH
        if self.scheme is Scheme.BEARER:
            return Kind.SERVICE_AUTH if self.claims.get("lxm") is not None else Kind.ACCESS_JWT
        return Kind.UNKNOWN

    @property
    def claimed_did(self) -> str | None:
        """The DID the token names as its uploader (a claim until the PDS accepts the token)."""
        if self.kind is Kind.SERVICE_AUTH:
            value = self.claims.get("iss")
            # A service-auth issuer may name a service of the DID (``did:...#atproto_labeler``).
            value = value.split("#", 1)[0] if isinstance(value, str) else None
        elif self.kind in (Kind.ACCESS_JWT, Kind.OAUTH):
            value = self.claims.get("sub")
        else:
            return None
        return (
            value if isinstance(value, str) and value.startswith("did:") and len(value) <= MAX_DID else None
        )


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JOSE header and JSON payload of a compact JWS, *without* checking its signature."""
    try:
        compact = jws.extract_compact(token.encode("ascii", "strict"))
        payload = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError, TypeError):
        return {}, {}
    header = compact.headers()
    if not isinstance(payload, dict) or not isinstance(header, dict):
        return {}, {}
    return dict(header), payload
