"""Verifying a held upload's DID against a stand-in PDS on a real port: getSession for plain bearer
tokens, never a replayed DPoP request, offline HS256 when the operator gives the PDS's secret."""

from __future__ import annotations

import time

from aiohttp import web
from yarl import URL

from gate.quarantine.verifier import UploaderVerifier
from tests.support.receiver import receiver
from tests.unit.review.test_uploader_jwt import DID, SECRET, claims, jwt

GET_SESSION = "/xrpc/com.atproto.server.getSession"
TOKEN = jwt(claims())


async def session_for(request: web.Request, body: bytes) -> web.Response:
    if request.headers.get("Authorization") == f"Bearer {TOKEN}":
        return web.json_response({"did": DID, "handle": "alice.test"})
    return web.json_response({"error": "InvalidToken", "message": "Bad token"}, status=400)


async def test_bearer_token_is_verified_by_get_session() -> None:
    async with receiver() as pds:
        pds.routes[GET_SESSION] = session_for
        verifier = UploaderVerifier(URL(pds.url), None)
        forged_token = jwt(claims(), secret="x" * 32)
        await verifier.start()
        try:
            good, how = await verifier.verify(f"Bearer {TOKEN}")
            forged, how_forged = await verifier.verify(f"Bearer {forged_token}")
        finally:
            await verifier.close()
    assert (good.did, good.verified, how) == (DID, True, "get_session")
    assert (forged.did, forged.verified, how_forged) == (DID, False, "none")  # the claim, unverified
    assert [r.headers["Authorization"] for r in pds.on(GET_SESSION)] == [
        f"Bearer {TOKEN}",
        f"Bearer {forged_token}",
    ]


async def test_dpop_requests_are_never_replayed() -> None:
    async with receiver() as pds:
        pds.routes[GET_SESSION] = session_for
        verifier = UploaderVerifier(URL(pds.url), None)
        await verifier.start()
        try:
            who, how = await verifier.verify(f"DPoP {jwt(claims(cnf={'jkt': 'k'}))}")
        finally:
            await verifier.close()
    assert (who.verified, how) == (False, "none")
    assert pds.got == []


async def test_with_the_jwt_secret_nothing_is_asked_of_the_pds() -> None:
    async with receiver() as pds:
        verifier = UploaderVerifier(URL(pds.url), SECRET)
        await verifier.start()
        try:
            oauth, how = await verifier.verify(f"DPoP {jwt(claims(cnf={'jkt': 'k'}))}")
            stale, _ = await verifier.verify(f"Bearer {jwt(claims(exp=int(time.time()) - 999))}")
        finally:
            await verifier.close()
    assert (oauth.did, oauth.verified, how) == (DID, True, "jwt_secret")
    assert not stale.verified
    assert pds.got == []
