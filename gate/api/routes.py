"""The API's endpoints (``gate.api`` says who may call them and why they are guarded so):

POST /api/v1/hash           bytes → every hash, as ``upload-gate hash`` prints them
POST /api/v1/match          hashes → matches in the local banks and HMA, looked up as the policy asks
POST /api/v1/scan           bytes, or a blob the PDS stores → the decision under the policy in force
GET  /api/v1/decisions      the decision log, filtered as ``upload-gate decisions`` filters it
GET  /api/v1/openapi.json   the OpenAPI 3.1 document of this API and the review API (no token needed)
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from gate import metrics
from gate.api.errors import ApiUnavailable, RateLimited
from gate.api.guard import api_errors, authorize
from gate.api.inputs import (
    DECISION_FILTERS,
    BlobRef,
    decision_filters,
    decision_row,
    flag,
    is_json,
    match_hashes,
    read_bytes,
    read_json,
    read_subject,
)
from gate.api.openapi import DOCUMENT_BYTES
from gate.api.service import API, Api
from gate.errors import InvalidRequest, UnsupportedMediaType
from gate.hashing.options import HashOptions
from gate.judge import Context, match_all
from gate.proxy.budget import Reservation
from gate.record import DecisionRecord, new_decision_id
from gate.signals import SIGNALS, SignalType
from gate.store.pool import StoreUnavailable
from gate.store.query import fetch_decisions
from gate.types import DecisionSource, Hashes, Uploader


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


async def scan_view(request: web.Request) -> web.Response:
    api = request.app[API]
    who = await authorize(request, api)
    record = flag(request.query, "record")
    if record and not api.sink.accepting():
        raise ApiUnavailable("the decision log is not accepting records; nothing was judged")
    context = Context(source=DecisionSource.API)
    reservation = Reservation(api.budget)
    try:
        subject = await read_subject(request, api, reservation)
        if isinstance(subject, BlobRef):
            blob: BlobRef | None = subject
            body = await api.blobs.get(subject.did, subject.cid, reservation)
        else:
            blob, body = None, subject
        context.timer.lap("read")
        judged = await api.judge.judge(body, context)
    finally:
        reservation.release()
    decision, hashes = judged.decision, judged.hashes
    recorded = new_decision_id() if record else None
    detail = {"verdict": decision.verdict.value, "rule": decision.rule, "recorded": recorded}
    if blob is not None:
        detail |= {"did": blob.did, "cid": blob.cid}
    await api.audited(who, "api_scan", hashes.sha256, detail)
    if recorded is not None:
        api.sink.submit(
            DecisionRecord(
                id=recorded,
                time=DecisionRecord.now(),
                source=DecisionSource.API,
                client_ip=None,  # the caller is a service, not an uploader
                # A stored blob is the repo's (the PDS's own word); bytes sent to the API are nobody's.
                uploader=Uploader(blob.did, "repo", verified_how="repo") if blob else Uploader(None, "none"),
                declared_type=None if blob or is_json(request) else request.content_type,
                hashes=hashes,
                decision=decision,
                verdict=decision.verdict,
                timings_ms=dict(context.timer.stages),
                cached=judged.cached,
            )
        )
    return web.json_response(
        {
            "decision": decision.to_json(),
            "hashes": hashes.to_json(),
            "cached": judged.cached,
            "recorded": recorded,
        }
    )


async def decisions_view(request: web.Request) -> web.Response:
    api = request.app[API]
    who = await authorize(request, api)
    filters = decision_filters(request.query)
    try:
        async with api.pool.transaction() as conn:
            rows = await fetch_decisions(conn, filters)
    except StoreUnavailable:
        raise ApiUnavailable("the decision log cannot be read now; retry shortly") from None
    asked = {k: v for k, v in request.query.items() if k in DECISION_FILTERS}
    await api.audited(who, "api_decisions", None, {"filters": asked, "rows": len(rows)})
    return web.json_response({"decisions": [decision_row(r) for r in rows]})


async def openapi_view(request: web.Request) -> web.Response:
    return web.Response(body=DOCUMENT_BYTES, content_type="application/json")


def install_api(app: web.Application, api: Api) -> None:
    """The API's routes and error handling on an admin-listener application (never the public one)."""
    app[API] = api
    app.middlewares.append(api_errors)

    async def close(app: web.Application) -> None:
        await api.blobs.close()

    app.on_cleanup.append(close)
    r = app.router
    r.add_post("/api/v1/hash", hash_view)
    r.add_post("/api/v1/match", match_view)
    r.add_post("/api/v1/scan", scan_view)
    r.add_get("/api/v1/decisions", decisions_view)
    r.add_get("/api/v1/openapi.json", openapi_view)
    # Each endpoint's success and refusal for rate exist at 0 from the first scrape: a rate and the
    # dashboard see the first call, and an empty panel means a wrong query. (Other answers, XRPC error
    # names, appear when first given.)
    for route in r.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/v1/") and path != "/api/v1/openapi.json":
            metrics.API_REQUESTS.labels(path, "ok")
            metrics.API_REQUESTS.labels(path, RateLimited.error)
