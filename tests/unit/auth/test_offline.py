"""Offline credential checks with the PDS's secret: what the PDS would refuse is refused unread, and
nothing the PDS would accept is refused (the module's one rule). Tokens are made by hand, as the PDS and
atproto clients make them (tests/support/tokens.py), not with the JOSE library under test."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from yarl import URL

from gate.auth.credential import Credential
from gate.auth.offline import OfflineCheck, Outcome, PdsFacts
from tests.support.tokens import DpopKey, hs256, unsigned

SECRET = "0123456789abcdef0123456789abcdef"
PDS_DID = "did:web:pds.example.com"
PUBLIC = URL("https://pds.example.com")
ALICE = "did:plc:alice"
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
NOW = time.time()
KEY = DpopKey()


def access(**extra: Any) -> dict[str, Any]:
    return {
        "scope": "com.atproto.access",
        "sub": ALICE,
        "aud": PDS_DID,
        "iat": NOW,
        "exp": NOW + 600,
        **extra,
    }


def oauth(**extra: Any) -> dict[str, Any]:
    return {
        "iss": str(PUBLIC),
        "sub": ALICE,
        "aud": PDS_DID,
        "scope": "atproto transition:generic",
        "cnf": {"jkt": KEY.thumbprint()},
        "iat": NOW,
        "exp": NOW + 600,
        "client_id": "https://app.example.com/client-metadata.json",
        **extra,
    }


def bearer(token: str) -> Credential:
    return Credential.parse(f"Bearer {token}")


def dpop(token: str, proof: str | None = None, **override: Any) -> Credential:
    # Every time in this module is NOW (the module may be imported minutes before a test runs).
    override = {"iat": int(NOW), **override}
    proof = proof if proof is not None else KEY.proof("POST", str(PUBLIC) + UPLOAD, token, **override)
    return Credential.parse(f"DPoP {token}", [proof])


CHECK = OfflineCheck(PdsFacts(SECRET, PDS_DID, PUBLIC))
GOOD_OAUTH = hs256(oauth(), SECRET)

Case = Callable[[], Credential]

CASES: list[tuple[str, Case, Outcome]] = [
    ("legacy access token", lambda: bearer(hs256(access(), SECRET)), Outcome.PASSED),
    ("legacy token without typ (entryway)", lambda: bearer(hs256(access(), SECRET, {"alg": "HS256"})),
     Outcome.PASSED),
    ("app password scope", lambda: bearer(hs256(access(scope="com.atproto.appPass"), SECRET)), Outcome.PASSED),
    ("expired within leeway", lambda: bearer(hs256(access(exp=NOW - 5), SECRET)), Outcome.PASSED),
    ("wrong secret", lambda: bearer(hs256(access(), "f" * 32)), Outcome.REFUSED),
    ("forged signature", lambda: bearer(unsigned(access())), Outcome.REFUSED),
    ("alg none", lambda: bearer(unsigned(access(), {"alg": "none", "typ": "at+jwt"})), Outcome.REFUSED),
    ("expired", lambda: bearer(hs256(access(exp=NOW - 3600), SECRET)), Outcome.REFUSED),
    ("not yet valid", lambda: bearer(hs256(access(nbf=NOW + 3600), SECRET)), Outcome.REFUSED),
    ("refresh token", lambda: bearer(hs256(access(), SECRET, {"alg": "HS256", "typ": "refresh+jwt"})),
     Outcome.REFUSED),
    ("another PDS's audience", lambda: bearer(hs256(access(aud="did:web:other"), SECRET)), Outcome.REFUSED),
    ("sub not a DID", lambda: bearer(hs256(access(sub="alice"), SECRET)), Outcome.REFUSED),
    ("OAuth token as Bearer", lambda: bearer(GOOD_OAUTH), Outcome.REFUSED),
    ("garbage", lambda: bearer("garbage"), Outcome.REFUSED),
    ("a.b.c", lambda: bearer("a.b.c"), Outcome.REFUSED),
    ("Basic", lambda: Credential.parse("Basic YWRtaW46cGFzcw=="), Outcome.REFUSED),
    ("unknown scheme", lambda: Credential.parse("Token abc"), Outcome.REFUSED),
    ("two spaces", lambda: Credential.parse("Bearer  abc"), Outcome.REFUSED),
    # Service auth is signed by the uploader's repo key: the PDS resolves the DID; the gate does not.
    ("service auth", lambda: bearer(unsigned({"iss": ALICE, "aud": PDS_DID, "lxm": "x"}, {"alg": "ES256K"})),
     Outcome.UNCHECKED),
    ("OAuth with its DPoP proof", lambda: dpop(GOOD_OAUTH), Outcome.PASSED),
    ("proof 3 minutes old (the PDS's tolerance)", lambda: dpop(GOOD_OAUTH, iat=int(NOW) - 185), Outcome.PASSED),
    ("proof with a query in htu", lambda: dpop(GOOD_OAUTH, htu=str(PUBLIC) + UPLOAD + "?x=1"), Outcome.PASSED),
    ("proof htu with dot segments", lambda: dpop(GOOD_OAUTH, htu=str(PUBLIC) + "/xrpc/./x/.." + UPLOAD[5:]),
     Outcome.PASSED),
    ("no proof", lambda: Credential.parse(f"DPoP {GOOD_OAUTH}"), Outcome.REFUSED),
    ("two proofs", lambda: Credential.parse(f"DPoP {GOOD_OAUTH}", [KEY.proof("POST", "x")] * 2),
     Outcome.REFUSED),
    ("proof for GET", lambda: dpop(GOOD_OAUTH, htm="GET"), Outcome.REFUSED),
    ("proof for another URL", lambda: dpop(GOOD_OAUTH, htu=str(PUBLIC) + "/xrpc/com.atproto.repo.createRecord"),
     Outcome.REFUSED),
    ("proof for another host", lambda: dpop(GOOD_OAUTH, htu="https://evil.example" + UPLOAD), Outcome.REFUSED),
    ("proof for another token", lambda: dpop(GOOD_OAUTH, ath="x"), Outcome.REFUSED),
    ("stale proof", lambda: dpop(GOOD_OAUTH, iat=int(NOW) - 3600), Outcome.REFUSED),
    ("proof from the future", lambda: dpop(GOOD_OAUTH, iat=int(NOW) + 3600), Outcome.REFUSED),
    ("proof without jti", lambda: dpop(GOOD_OAUTH, jti=""), Outcome.REFUSED),
    ("proof by another key",
     lambda: dpop(GOOD_OAUTH, DpopKey().proof("POST", str(PUBLIC) + UPLOAD, GOOD_OAUTH, iat=int(NOW))),
     Outcome.REFUSED),
    ("proof garbage", lambda: dpop(GOOD_OAUTH, "garbage"), Outcome.REFUSED),
    ("token of another issuer", lambda: dpop(hs256(oauth(iss="https://other"), SECRET)), Outcome.REFUSED),
    ("token without atproto scope", lambda: dpop(hs256(oauth(scope="transition:generic"), SECRET)),
     Outcome.REFUSED),
    ("token without cnf", lambda: dpop(hs256({k: v for k, v in oauth().items() if k != "cnf"}, SECRET)),
     Outcome.REFUSED),
    ("legacy token as DPoP", lambda: dpop(hs256(access(), SECRET)), Outcome.REFUSED),
    ("expired OAuth token", lambda: dpop(hs256(oauth(exp=NOW - 3600), SECRET)), Outcome.REFUSED),
    ("forged OAuth token", lambda: dpop(hs256(oauth(), "f" * 32)), Outcome.REFUSED),
]  # fmt: skip


@pytest.mark.parametrize(("name", "credential", "outcome"), CASES, ids=[c[0] for c in CASES])
def test_offline_check(name: str, credential: Case, outcome: Outcome) -> None:
    assert CHECK.check(credential(), "POST", UPLOAD, now=NOW) is outcome


def test_without_known_did_and_url_those_claims_are_not_checked() -> None:
    lenient = OfflineCheck(PdsFacts(SECRET))
    other_aud = bearer(hs256(access(aud="did:web:other"), SECRET))
    assert lenient.check(other_aud, "POST", UPLOAD, now=NOW) is Outcome.PASSED
    elsewhere = dpop(GOOD_OAUTH, htu="https://elsewhere" + UPLOAD)
    assert lenient.check(elsewhere, "POST", UPLOAD, now=NOW) is Outcome.PASSED
    # ... but the signature still is.
    assert lenient.check(bearer(hs256(access(), "f" * 32)), "POST", UPLOAD, now=NOW) is Outcome.REFUSED


def test_a_target_is_resolved_against_the_public_url_as_the_pds_resolves_it() -> None:
    # The PDS builds the URL a proof must name from its public URL and the path it receives.
    sub = "/xrpc/../xrpc/com.atproto.repo.uploadBlob?x=1"
    proof = KEY.proof("POST", str(PUBLIC) + UPLOAD, GOOD_OAUTH, iat=int(NOW))
    assert CHECK.check(dpop(GOOD_OAUTH, proof), "POST", sub, now=NOW) is Outcome.PASSED
    other = KEY.proof("POST", "http://other.example" + UPLOAD, GOOD_OAUTH, iat=int(NOW))
    assert CHECK.check(dpop(GOOD_OAUTH, other), "POST", UPLOAD, now=NOW) is Outcome.REFUSED


def test_a_disagreement_with_the_pds_switches_that_scheme_off() -> None:
    check = OfflineCheck(PdsFacts(SECRET, "did:web:misconfigured", PUBLIC))
    token = bearer(hs256(access(), SECRET))
    assert check.check(token, "POST", UPLOAD, now=NOW) is Outcome.REFUSED
    check.disagreed(token)
    assert check.check(token, "POST", UPLOAD, now=NOW) is Outcome.UNCHECKED
    assert (
        check.check(dpop(GOOD_OAUTH, htm="GET"), "POST", UPLOAD, now=NOW) is Outcome.REFUSED
    )  # DPoP still on
