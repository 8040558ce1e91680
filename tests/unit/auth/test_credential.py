"""Reading an upload's credential the way the PDS reads it: scheme, kind, and the DID it claims."""

from __future__ import annotations

import pytest

from gate.auth.credential import Credential, Kind, Scheme
from tests.support.tokens import unsigned

ALICE = "did:plc:alice"


@pytest.mark.parametrize(
    ("authorization", "scheme", "kind", "did"),
    [
        (f"Bearer {unsigned({'sub': ALICE})}", Scheme.BEARER, Kind.ACCESS_JWT, ALICE),
        (f"bearer {unsigned({'sub': ALICE})}", Scheme.BEARER, Kind.ACCESS_JWT, ALICE),
        (f"DPoP {unsigned({'sub': ALICE, 'cnf': {'jkt': 'x'}})}", Scheme.DPOP, Kind.OAUTH, ALICE),
        # Service auth (the video service): the uploader is the issuer, a service fragment dropped.
        (f"Bearer {unsigned({'iss': ALICE, 'lxm': 'x', 'sub': 'did:plc:other'})}", Scheme.BEARER,
         Kind.SERVICE_AUTH, ALICE),
        (f"Bearer {unsigned({'iss': ALICE + '#atproto_labeler', 'lxm': 'x'})}", Scheme.BEARER,
         Kind.SERVICE_AUTH, ALICE),
        (f"Bearer {unsigned({'sub': 'alice'})}", Scheme.BEARER, Kind.ACCESS_JWT, None),
        (f"Bearer {unsigned({'sub': 'did:' + 'x' * 5000})}", Scheme.BEARER, Kind.ACCESS_JWT, None),
        ("Bearer garbage", Scheme.BEARER, Kind.ACCESS_JWT, None),
        ("Bearer a.b.c", Scheme.BEARER, Kind.ACCESS_JWT, None),
        ("Basic YWRtaW46cGFzcw==", Scheme.BASIC, Kind.UNKNOWN, None),
        (f"Token {unsigned({'sub': ALICE})}", Scheme.OTHER, Kind.UNKNOWN, None),
        # The PDS splits on single spaces and wants exactly two parts.
        (f"Bearer  {unsigned({'sub': ALICE})}", Scheme.MALFORMED, Kind.UNKNOWN, None),
        ("Bearer", Scheme.MALFORMED, Kind.UNKNOWN, None),
        ("malformed x", Scheme.OTHER, Kind.UNKNOWN, None),
    ],
)  # fmt: skip
def test_scheme_kind_and_claim(authorization: str, scheme: Scheme, kind: Kind, did: str | None) -> None:
    credential = Credential.parse(authorization)
    assert (credential.scheme, credential.kind, credential.claimed_did) == (scheme, kind, did)


def test_the_token_never_shows_in_its_repr() -> None:
    token = unsigned({"sub": ALICE})
    assert token not in repr(Credential.parse(f"Bearer {token}", ["proof"]))
