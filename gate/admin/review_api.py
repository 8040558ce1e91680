"""The review JSON API under ``/admin/api`` on the admin listener (bearer tokens; see ``gate.admin.auth``).

GET  /admin/api/items?state=held              the queue (metadata, never bytes)
GET  /admin/api/items/{id}                    one item and its audit trail
GET  /admin/api/items/{id}/preview            blurred greyscale JPEG
POST /admin/api/items/{id}/reveal             → {"url", "expires"}: a short-lived link to the original
GET  /admin/api/items/{id}/original?t=…       the original bytes (same token holder, before expiry)
POST /admin/api/items/{id}/release            false positive: allowlist the SHA-256, delete evidence
POST /admin/api/items/{id}/confirm            {"takedown": true} also takes the account down (admin)
POST /admin/api/items/{id}/reported           {"report_id": "…"} starts the preservation clock
POST /admin/api/items/{id}/legal-hold         {"reason": "…"} never purged or released until lifted (admin)
POST /admin/api/items/{id}/legal-hold/lift    {"reason": "…"} (optional) lifts it (admin)
GET  /admin/api/audit?subject=ID              the audit trail (admin)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gate.admin.auth import require
from gate.admin.review import INLINE_TYPES, Review
from gate.admin.tokens import Role, TokenStore
from gate.errors import InvalidRequest
from gate.quarantine.allowlist import NoAllowlistBank
from gate.quarantine.keys import EvidenceUnreadable
from gate.store.item import EvidenceState
from gate.store.pool import StoreUnavailable
from gate.store.transitions import EvidenceNotFound, InvalidTransition

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ReviewSite:
    review: Review
    tokens: TokenStore


REVIEW_SITE = web.AppKey("review_site", ReviewSite)
# The review site's forms and JSON bodies (a reason, a report id): aiohttp refuses anything larger (413)
# on whichever private listener the site is on. The API's bodies are read by its own reader, not capped here.
BODY_BYTES = 64 * 1024

# Served with every byte of evidence or derivative: never cached, never sniffed, never scripted.
NO_STORE = {
    "Cache-Control": "no-store, private",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
}


def _error(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"error": name, "message": message}, status=status)


def guarded(handler: Handler) -> Handler:
    """Map the evidence store's errors to answers; nothing internal leaks."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except EvidenceNotFound:
            return _error(404, "NotFound", "no such item, or its evidence is gone")
        except InvalidTransition as exc:
            return _error(409, "InvalidTransition", str(exc))
        except NoAllowlistBank as exc:
            return _error(409, "AllowlistUnavailable", str(exc))
        except StoreUnavailable:
            log.exception("review: evidence store unavailable")
            return _error(503, "Unavailable", "the evidence store is unavailable; nothing was changed")
        except EvidenceUnreadable:
            log.error("review: evidence of %s does not decrypt", request.match_info.get("id"))
            return _error(500, "Unreadable", "the evidence does not decrypt (wrong or retired key?)")

    return wrapped


def site(request: web.Request) -> ReviewSite:
    return request.app[REVIEW_SITE]


async def _session_name(request: web.Request, role: Role = Role.REVIEWER) -> str:
    s = site(request)
    session = await require(request, s.tokens, s.review.signer, role)
    return session.name


class BadRequest(InvalidRequest):
    """A 400 in the API's shape (``{"error": "InvalidRequest", "message"}``), as the OpenAPI document says."""


async def _json_body(request: web.Request, fields: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """A JSON object body with only ``fields``, each of its type (an empty body is ``{}``)."""
    if not request.can_read_body:
        return {}
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise BadRequest("expected a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    for name, value in body.items():
        if name not in fields:
            raise BadRequest(f"unknown field {name!r} (allowed: {', '.join(fields) or 'none'})")
        if not isinstance(value, fields[name]) or (isinstance(value, str) and "\x00" in value):
            raise BadRequest(f"{name}: not a valid value")
    return body


async def list_items(request: web.Request) -> web.Response:
    actor = await _session_name(request)
    raw = request.query.get("state", "held")
    state = (
        None if raw == "all" else EvidenceState(raw) if raw in EvidenceState.__members__.values() else None
    )
    if state is None and raw != "all":
        return _error(400, "InvalidRequest", "state must be held, released, confirmed, reported or all")
    items = await site(request).review.queue(actor, state)
    return web.json_response({"items": [i.to_json() for i in items]})


async def get_item(request: web.Request) -> web.Response:
    actor = await _session_name(request)
    review = site(request).review
    item = await review.item(actor, request.match_info["id"])
    trail = await review.evidence.audit.trail(item.decision_id)
    return web.json_response({"item": item.to_json(), "audit": [e.to_json() for e in trail]})


async def preview(request: web.Request) -> web.Response:
    actor = await _session_name(request)
    jpeg = await site(request).review.preview(actor, request.match_info["id"])
    if jpeg is None:
        return _error(404, "NoPreview", "no image preview for this item")
    return web.Response(body=jpeg, content_type="image/jpeg", headers=NO_STORE)


async def reveal(request: web.Request) -> web.Response:
    actor = await _session_name(request)
    item_id = request.match_info["id"]
    token, expires = await site(request).review.grant_reveal(actor, item_id)
    url = request.app.router["review_api_original"].url_for(id=item_id).with_query(t=token)
    return web.json_response({"url": str(url), "expires": expires})


async def original(request: web.Request) -> web.Response:
    actor = await _session_name(request)
    item_id = request.match_info["id"]
    revealed = await site(request).review.open_reveal(actor, item_id, request.query.get("t", ""))
    if revealed is None:
        return _error(403, "RevealExpired", "this reveal link expired or was made for someone else")
    headers = dict(NO_STORE)
    inline = revealed.media_type in INLINE_TYPES
    headers["Content-Disposition"] = "inline" if inline else f'attachment; filename="{item_id}.bin"'
    media_type = revealed.media_type if inline else "application/octet-stream"
    return web.Response(body=revealed.body, content_type=media_type, headers=headers)


async def release(request: web.Request) -> web.Response:
    actor = await _session_name(request)
    item = await site(request).review.release(actor, request.match_info["id"])
    return web.json_response({"item": item.to_json()})


async def confirm(request: web.Request) -> web.Response:
    actor = await _session_name(request)
    takedown = (await _json_body(request, {"takedown": bool})).get("takedown") is True
    if takedown:
        await _session_name(request, Role.ADMIN)
    outcome = await site(request).review.confirm(actor, request.match_info["id"], takedown=takedown)
    return web.json_response(
        {"item": outcome.item.to_json(), "takedown": outcome.takedown, "message": outcome.message}
    )


async def reported(request: web.Request) -> web.Response:
    actor = await _session_name(request)
    body = await _json_body(request, {"report_id": str})
    item = await site(request).review.mark_reported(
        actor, request.match_info["id"], str(body.get("report_id", ""))
    )
    return web.json_response({"item": item.to_json()})


async def legal_hold(request: web.Request) -> web.Response:
    actor = await _session_name(request, Role.ADMIN)
    body = await _json_body(request, {"reason": str})
    item = await site(request).review.place_legal_hold(
        actor, request.match_info["id"], str(body.get("reason", ""))
    )
    return web.json_response({"item": item.to_json()})


async def lift_legal_hold(request: web.Request) -> web.Response:
    actor = await _session_name(request, Role.ADMIN)
    body = await _json_body(request, {"reason": (str, type(None))})
    reason = body.get("reason")
    item = await site(request).review.lift_legal_hold(
        actor, request.match_info["id"], str(reason) if reason is not None else None
    )
    return web.json_response({"item": item.to_json()})


async def audit(request: web.Request) -> web.Response:
    actor = await _session_name(request, Role.ADMIN)
    subject = request.query.get("subject")
    if not subject or len(subject) > 200 or "\x00" in subject:
        return _error(400, "InvalidRequest", "subject (an item id) is required")
    review = site(request).review
    trail = await review.evidence.audit.trail(subject)
    await review.evidence.audit.record(actor, "audit_read", subject, {})
    return web.json_response({"audit": [e.to_json() for e in trail]})


def add_api_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/api/items", guarded(list_items))
    r.add_get("/admin/api/items/{id}", guarded(get_item))
    r.add_get("/admin/api/items/{id}/preview", guarded(preview))
    r.add_post("/admin/api/items/{id}/reveal", guarded(reveal))
    r.add_get("/admin/api/items/{id}/original", guarded(original), name="review_api_original")
    r.add_post("/admin/api/items/{id}/release", guarded(release))
    r.add_post("/admin/api/items/{id}/confirm", guarded(confirm))
    r.add_post("/admin/api/items/{id}/reported", guarded(reported))
    r.add_post("/admin/api/items/{id}/legal-hold", guarded(legal_hold))
    r.add_post("/admin/api/items/{id}/legal-hold/lift", guarded(lift_legal_hold))
    r.add_get("/admin/api/audit", guarded(audit))
