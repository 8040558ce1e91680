"""``OfflineCheck``: the credential checks the gate can make with the PDS's own secret, before it reads a
byte of an upload's body.

Why: without it, anyone with any ``Authorization`` header makes the gate read, buffer and hash up to
the upload limit before the PDS is asked who they are. With the PDS's ``PDS_JWT_SECRET`` the gate can
refuse forged, expired and misdirected tokens unread, and answer them with the PDS's own words (the
pipeline asks the PDS with an empty body and relays its refusal).

Trust boundary, and the one rule of this module: **never stricter than the PDS**. A check here may let
through what the PDS then refuses (the PDS is asked again before any verdict is revealed), but a
credential the PDS would accept must pass, or a real user's upload fails. So every check mirrors
@atproto/pds 0.4.x (auth-verifier.ts, oauth-provider's dpop-manager.ts and oauth-verifier.ts) with a
little more leeway on time, and what needs state the gate does not have is left to the PDS: DPoP nonces
and replay (a proof is checked here, never consumed), revoked OAuth tokens, taken-down accounts, and
service-auth tokens (signed by the uploader's repo key: checking them needs a DID resolution).

Should the PDS ever accept a credential this module refused (a misconfigured public URL or service DID,
a rotated secret), the pipeline calls ``disagreed`` and the checks of that scheme stop for this process:
a DPoP proof already spent on asking the PDS cannot be forwarded again, so a stricter check here would
fail the same user again and again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import posixpath
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, OctKey
from yarl import URL

from gate import metrics
from gate.auth.credential import Credential, Kind, Scheme
from gate.errors import Refusal

log = logging.getLogger(__name__)

# Seconds of clock skew forgiven beyond what the PDS forgives (never less: see the module docstring).
LEEWAY = 30
# oauth-provider: a DPoP proof's ``iat`` may be 10 s old (maxTokenAge) with 3 min of clock tolerance.
DPOP_MAX_AGE = 10
DPOP_TOLERANCE = 180
# jose (as the PDS calls it) accepts any HMAC algorithm for a secret key; the PDS signs HS256.
HMAC_ALGS = ("HS256", "HS384", "HS512")
# jose's EmbeddedJWK verifies any asymmetric algorithm of the embedded public key.
PROOF_ALGS = frozenset(
    {"ES256", "ES256K", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)


class Outcome(StrEnum):
    PASSED = "passed"  # every check this module can make holds; the PDS still has the last word
    REFUSED = "refused"  # the PDS would refuse it too: answer with its words, read nothing
    UNCHECKED = "unchecked"  # nothing to check offline (service auth, or checks switched off)


@dataclass(frozen=True, slots=True)
class PdsFacts:
    """What the PDS signs and expects: its secret, its service DID (``aud``), its public URL (the OAuth
    issuer, and the origin of every DPoP ``htu``). Unknown DID or URL: those claims are not checked."""

    jwt_secret: str
    service_did: str | None = None
    public_url: URL | None = None


class Refused(Refusal):
    """One check failed; the message is for the operator's debug log, never for the client."""


class OfflineCheck:
    def __init__(self, facts: PdsFacts, *, leeway: float = LEEWAY) -> None:
        self.facts = facts
        self._key = OctKey.import_key(facts.jwt_secret.encode())
        self._leeway = leeway
        self._disabled: set[Scheme] = set()

    def check(self, credential: Credential, method: str, target: str, now: float | None = None) -> Outcome:
        """``target``: the request target in the origin form the PDS will receive."""
        at = time.time() if now is None else now
        if credential.scheme in self._disabled:
            return self._counted(Outcome.UNCHECKED)
        try:
            if credential.scheme in (Scheme.MALFORMED, Scheme.OTHER, Scheme.BASIC):
                raise Refused(f"uploadBlob takes no {credential.scheme.value} credential")
            if credential.kind is Kind.SERVICE_AUTH:
                return self._counted(Outcome.UNCHECKED)
            claims = self._access_token(credential, at)
            if credential.scheme is Scheme.DPOP:
                self._dpop(credential, claims, method, target, at)
        except Refused as exc:
            log.debug("credential refused offline: %s", exc)
            return self._counted(Outcome.REFUSED)
        return self._counted(Outcome.PASSED)

    def disagreed(self, credential: Credential) -> None:
        """The PDS accepted what ``check`` refused: stop checking that scheme offline in this process."""
        metrics.CREDENTIAL_CHECKS.labels("offline", "disagreed").inc()
        if credential.scheme not in self._disabled:
            self._disabled.add(credential.scheme)
            log.warning(
                "the PDS accepted a %s credential the gate's offline check refused; offline checks of "
                "%s credentials are off until restart. Check GATE_PDS_JWT_SECRET, GATE_PDS_SERVICE_DID "
                "and GATE_PDS_PUBLIC_URL (or GATE_PDS_ENV_FILE) against the PDS's own settings.",
                credential.scheme.value,
                credential.scheme.value,
            )

    @staticmethod
    def _counted(outcome: Outcome) -> Outcome:
        metrics.CREDENTIAL_CHECKS.labels("offline", outcome.value).inc()
        return outcome

    # ---- the access token (legacy Bearer, or OAuth's DPoP-bound one) -------------------------------

    def _access_token(self, credential: Credential, at: float) -> Mapping[str, Any]:
        try:
            verified = jws.deserialize_compact(credential.token, self._key, algorithms=HMAC_ALGS)
            claims = json.loads(verified.payload)
        except (JoseError, ValueError, UnicodeError, TypeError) as exc:
            raise Refused(f"token signature: {type(exc).__name__}") from None
        if not isinstance(claims, dict):
            raise Refused("token payload is not an object")
        typ = verified.headers().get("typ")
        oauth = credential.scheme is Scheme.DPOP
        # Legacy tokens may lack ``typ`` (the PDS allows it); OAuth's signer always checks it.
        if (typ is not None or oauth) and typ != "at+jwt":
            raise Refused(f"token typ {typ!r}")
        self._times(claims, at)
        sub, aud = claims.get("sub"), claims.get("aud")
        if not isinstance(sub, str) or not sub.startswith("did:"):
            raise Refused("token sub is not a DID")
        if oauth:
            self._oauth_claims(claims, aud)
        else:
            if "lxm" in claims or "cnf" in claims:
                raise Refused("a Bearer access token with lxm or cnf")
            if not isinstance(aud, str) or not aud.startswith("did:"):
                raise Refused("token aud is not a DID")
            if self.facts.service_did is not None and aud != self.facts.service_did:
                raise Refused("token aud is not this PDS")
        return claims

    def _oauth_claims(self, claims: Mapping[str, Any], aud: object) -> None:
        auds = aud if isinstance(aud, list) else [aud]
        if self.facts.service_did is not None and self.facts.service_did not in auds:
            raise Refused("token aud is not this PDS")
        if self.facts.public_url is not None and claims.get("iss") != _issuer(self.facts.public_url):
            raise Refused("token iss is not this PDS's OAuth issuer")
        scope = claims.get("scope")
        if not isinstance(scope, str) or "atproto" not in scope.split(" "):
            raise Refused("token scope lacks atproto")
        cnf = claims.get("cnf")
        if not isinstance(cnf, dict) or not isinstance(cnf.get("jkt"), str):
            raise Refused("a DPoP token without cnf.jkt")

    def _times(self, claims: Mapping[str, Any], at: float) -> None:
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if exp is not None and (not _number(exp) or exp + self._leeway <= at):
            raise Refused("token expired")
        if nbf is not None and (not _number(nbf) or nbf - self._leeway > at):
            raise Refused("token not yet valid")

    # ---- the DPoP proof (RFC 9449 §4.3, as oauth-provider checks it, nonce and replay aside) -------

    def _dpop(
        self, credential: Credential, claims: Mapping[str, Any], method: str, target: str, at: float
    ) -> None:
        if len(credential.proofs) != 1 or not credential.proofs[0]:
            raise Refused("not exactly one DPoP proof")
        proof = credential.proofs[0]
        try:
            header = jws.extract_compact(proof.encode("ascii")).headers()
            alg, jwk = header.get("alg"), header.get("jwk")
            if header.get("typ") != "dpop+jwt" or alg not in PROOF_ALGS or not isinstance(jwk, dict):
                raise Refused("DPoP proof header")
            if "d" in jwk or "k" in jwk:
                raise Refused("DPoP proof embeds a private or symmetric key")
            key = JWKRegistry.import_key(jwk)
            payload = json.loads(jws.deserialize_compact(proof, key, algorithms=[str(alg)]).payload)
            thumbprint = key.thumbprint()
        except (JoseError, ValueError, UnicodeError, TypeError, KeyError) as exc:
            raise Refused(f"DPoP proof signature: {type(exc).__name__}") from None
        if not isinstance(payload, dict):
            raise Refused("DPoP proof payload is not an object")
        iat = payload.get("iat")
        if not _number(iat) or not (
            at - DPOP_MAX_AGE - DPOP_TOLERANCE - self._leeway <= iat <= at + DPOP_TOLERANCE + self._leeway
        ):
            raise Refused("DPoP proof iat outside its window")
        if not isinstance(payload.get("jti"), str) or not payload["jti"]:
            raise Refused("DPoP proof without jti")
        if payload.get("htm") != method:
            raise Refused("DPoP proof htm")
        htu = payload.get("htu")
        if not isinstance(htu, str):
            raise Refused("DPoP proof htu")
        if self.facts.public_url is not None and _htu(htu) != _htu_of_request(self.facts.public_url, target):
            raise Refused("DPoP proof htu is not this request")
        if payload.get("ath") != _b64(hashlib.sha256(credential.token.encode()).digest()):
            raise Refused("DPoP proof ath")
        if thumbprint != claims["cnf"]["jkt"]:
            raise Refused("DPoP key is not the one the token is bound to")


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _issuer(public_url: URL) -> str:
    # oauth-types' issuer identifier is the URL's origin with no trailing slash.
    return str(public_url.origin())


def _htu(url: str) -> str | None:
    """``origin + pathname`` of a URL, normalised as WHATWG's URL parser does for http(s): lower-case
    scheme and host, no default port, backslashes as slashes, dot segments resolved, no query."""
    try:
        parsed = URL(url.replace("\\", "/"), encoded=True)
    except ValueError:
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host or parsed.user or parsed.password:
        return None
    path = posixpath.normpath(parsed.raw_path or "/")
    path = "/" + path.lstrip("/") + ("/" if parsed.raw_path.endswith("/") and path != "/" else "")
    return f"{parsed.origin()}{path}"


def _htu_of_request(public_url: URL, target: str) -> str | None:
    # The PDS resolves the target it receives (always origin form: the gate forwards absolute-form
    # targets that way) against its public URL.
    return _htu(str(public_url.origin()) + "/" + target.split("?", 1)[0].lstrip("/"))
