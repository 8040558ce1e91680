"""The API's endpoints (``gate.api`` says who may call them and why they are guarded so):

POST /api/v1/hash           bytes → every hash, as ``upload-gate hash`` prints them
POST /api/v1/match          hashes → matches in the local banks and HMA, looked up as the policy asks
GET  /api/v1/openapi.json   the OpenAPI 3.1 document of this API and the review API (no token needed)
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from gate.api.guard import api_errors, authorize
from gate.api.inputs import flag, is_json, match_hashes, read_bytes, read_json
from gate.api.openapi import DOCUMENT_BYTES
from gate.api.service import API, Api
from gate.errors import InvalidRequest, UnsupportedMediaType
from gate.hashing.options import HashOptions
from gate.judge import match_all
from gate.proxy.budget import Reservation
from gate.signals import SIGNALS, SignalType
from gate.types import Hashes


async def hash_view(request: web.Request) -> web.Response:
    api = request.app[API]
    who = await authorize(request, api)
    options = api.judge.policy.plan.hashing  # the policy's (quality cut-off, frame limits...)
    wanted = {name: flag(request.query, name) for name in ("dihedral", "phash", "dhash")}
    for name in ("phash", "dhash"):
        if wanted[name] and not SIGNALS[SignalType(name)].available():
            raise InvalidRequest(f"{name} needs the imagehash extra, which this gate does not have")
    options = dataclasses.replace(
        options,
        dihedral=options.dihedral or wanted["dihedral"],
        phash=options.phash or wanted["phash"],
        dhash=options.dhash or wanted["dhash"],
    )
    hashes = await _hashed(request, api, options)
    await api.audited(who, "api_hash", hashes.sha256, {"size": hashes.size, "media_type": hashes.media_type})
    return web.json_response(hashes.to_json())


async def _hashed(request: web.Request, api: Api, options: HashOptions) -> Hashes:
    reservation = Reservation(api.budget)  # released as soon as the bytes are hashed
    try:
        body = await read_bytes(request, api, reservation)
        return await api.judge.hasher.hash(body, options)
    finally:
        reservation.release()


async def match_view(request: web.Request) -> web.Response:
    api = request.app[API]
    who = await authorize(request, api)
    if not is_json(request):
        raise UnsupportedMediaType("the body must be JSON (Content-Type: application/json)")
    reservation = Reservation(api.budget)
    try:
        body = await read_json(request, api.small_bodies, reservation)
    finally:
        reservation.release()
    hashes = match_hashes(body)
    plan = api.judge.policy.plan  # looked up as the policy in force asks (banks, distances)
    found = await match_all(api.judge.matchers, hashes, plan)
    detail = {
        "asked": sorted(s.value for s in SIGNALS if SIGNALS[s].values(hashes)),
        "matches": len(found.matches),
        "banks": sorted({f"{m.source}:{m.bank}" for m in found.matches}),
    }
    await api.audited(who, "api_match", hashes.sha256 or None, detail)
    return web.json_response(
        {
            "matches": [m.to_json() for m in found.matches],
            "failures": [{"matcher": f.matcher, "kind": f.kind} for f in found.failures],
            "policy_version": plan.version,
        }
    )


async def openapi_view(request: web.Request) -> web.Response:
    return web.Response(body=DOCUMENT_BYTES, content_type="application/json")


def install_api(app: web.Application, api: Api) -> None:
    """The API's routes and error handling on an admin-listener application (never the public one)."""
    app[API] = api
    app.middlewares.append(api_errors)
    r = app.router
    r.add_post("/api/v1/hash", hash_view)
    r.add_post("/api/v1/match", match_view)
    r.add_get("/api/v1/openapi.json", openapi_view)
