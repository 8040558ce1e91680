"""The review page under ``/review``: server-rendered HTML (Jinja2 templates in ``templates/``, every
value auto-escaped), one small inline script, no build step.

Less human exposure by design: the queue shows reasons, matches and hashes; each item shows a blurred
greyscale derivative; the original appears only after the reviewer presses "Reveal", for
``GATE_REVEAL_SECONDS``, through a link bound to that reviewer — and the page records that a human saw it.
Every page view and action is audited by ``Review``. Login stores the token in an HttpOnly,
SameSite=Strict cookie; every form carries the CSRF token bound to that login.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from yarl import URL

from gate.admin.auth import CSRF_FIELD, Session, clear_login_cookie, require, set_login_cookie
from gate.admin.review_api import NO_STORE, guarded, original, preview, site
from gate.admin.tokens import Role
from gate.store.item import EvidenceItem, EvidenceState
from gate.store.pool import StoreUnavailable

MESSAGES = {
    "released": "Released: the SHA-256 is on the allowlist and the evidence is deleted.",
    "confirmed": "Confirmed: the evidence is kept under legal retention.",
    "reported": "Marked reported: the preservation clock (the policy's reported_days) has started.",
    "applied": "Confirmed, and the uploader's account was taken down on the PDS.",
    "unverified": "Confirmed, but the account was NOT taken down: the uploader's DID was never verified.",
    "capped": "Confirmed, but the account was NOT taken down: today's takedown cap is reached.",
    "disabled": "Confirmed, but PDS actions are not configured (GATE_PDS_ADMIN_PASSWORD).",
    "failed": "Confirmed, but the PDS refused or could not be reached for the takedown.",
    "held": "Legal hold placed: the evidence is neither purged nor released until an admin lifts it.",
    "lifted": "Legal hold lifted: the item's retention deadline applies again.",
    "lifted-expired": "Legal hold lifted. Its retention deadline has passed: the next purge deletes the bytes.",
}


def _page(
    request: web.Request,
    template: str,
    title: str,
    session: Session | None,
    context: dict[str, Any] | None = None,
    nonce: str | None = None,
) -> web.Response:
    nonce = nonce or secrets.token_urlsafe(12)
    response = aiohttp_jinja2.render_template(
        template, request, {"title": title, "session": session, "nonce": nonce, **(context or {})}
    )
    response.headers.update(
        {
            **{k: v for k, v in NO_STORE.items() if k != "Content-Security-Policy"},
            "Content-Security-Policy": (
                f"default-src 'none'; img-src 'self'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}';"
                " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "X-Frame-Options": "DENY",
            # same-origin, not no-referrer: with no-referrer Chromium posts forms with "Origin: null", and
            # the login check below needs the real origin (while other sites still learn nothing).
            "Referrer-Policy": "same-origin",
        }
    )
    return response


async def _session(request: web.Request, role: Role = Role.REVIEWER) -> Session:
    s = site(request)
    return await require(request, s.tokens, s.review.signer, role, page=True)


async def queue_page(request: web.Request) -> web.Response:
    session = await _session(request)
    raw = request.query.get("state", "held")
    state = EvidenceState(raw) if raw in EvidenceState.__members__.values() else EvidenceState.HELD
    items = await site(request).review.queue(session.name, state)
    context = {"items": items, "state": state, "states": list(EvidenceState)}
    return _page(request, "queue.html", f"Queue: {state.value}", session, context)


async def item_page(request: web.Request) -> web.Response:
    session = await _session(request)
    review = site(request).review
    item = await review.item(session.name, request.match_info["id"])
    token = request.query.get("reveal", "")
    revealing = bool(
        item.has_bytes and token and review.signer.check_reveal(token, session.name, item.decision_id)
    )
    facts = [
        ("state", f"{item.state.value}{' (legal hold)' if item.legal_hold else ''}"),
        ("legal hold", _hold(item)),
        ("held at", item.created_at.isoformat()),
        ("rule / reason", f"{item.rule} / {item.reason}"),
        ("uploader", None),  # the template's uploader(): the verified DID, or the claim marked as one
        ("sha256", item.sha256),
        ("cid", item.cid),
        ("media", f"{item.media_type} ({item.declared_type} declared), {item.size} bytes"),
        (
            "viewed by a human",
            "yes (original revealed)" if item.human_viewed or revealing else "no (blurred preview only)",
        ),
        ("report id", item.report_id or "—"),
        ("evidence kept until", item.expires_at.isoformat() if item.expires_at else "no deadline yet"),
    ]
    context = {
        "item": item,
        "facts": facts,
        "message": MESSAGES.get(request.query.get("done", "")),
        "revealing": revealing,
        "token": token,
        "left": max(0, int(token.split(".", 1)[0]) - int(time.time())) if revealing else 0,
        "admin": session.principal.may(Role.ADMIN),
    }
    return _page(request, "item.html", f"Item {item.decision_id}", session, context)


def _hold(item: EvidenceItem) -> str:
    if not item.legal_hold:
        return "none"
    since = item.legal_hold_at.isoformat(timespec="seconds") if item.legal_hold_at else "?"
    return f"since {since} by {item.legal_hold_by}: {item.legal_hold_reason}"


async def action(request: web.Request) -> web.StreamResponse:
    kind = request.match_info["action"]
    form = await request.post()
    takedown = kind == "confirm" and form.get("takedown") == "1"
    admin_only = takedown or kind in ("legal-hold", "lift-hold")
    session = await _session(request, Role.ADMIN if admin_only else Role.REVIEWER)
    review = site(request).review
    item_id = request.match_info["id"]
    base = f"/review/item/{item_id}"
    if kind == "reveal":
        token, _ = await review.grant_reveal(session.name, item_id)
        raise web.HTTPSeeOther(f"{base}?reveal={token}")
    if kind == "release":
        await review.release(session.name, item_id)
        raise web.HTTPSeeOther(f"{base}?done=released")
    if kind == "confirm":
        outcome = await review.confirm(session.name, item_id, takedown=takedown)
        raise web.HTTPSeeOther(f"{base}?done={outcome.takedown or 'confirmed'}")
    if kind == "reported":
        await review.mark_reported(session.name, item_id, str(form.get("report_id", "")))
        raise web.HTTPSeeOther(f"{base}?done=reported")
    if kind == "legal-hold":
        await review.place_legal_hold(session.name, item_id, str(form.get("reason", "")))
        raise web.HTTPSeeOther(f"{base}?done=held")
    if kind == "lift-hold":
        item = await review.lift_legal_hold(session.name, item_id, str(form.get("reason", "")))
        expired = item.has_bytes and item.expires_at is not None and item.expires_at <= datetime.now(UTC)
        raise web.HTTPSeeOther(f"{base}?done={'lifted-expired' if expired else 'lifted'}")
    raise web.HTTPNotFound()


async def login_form(request: web.Request) -> web.Response:
    return _page(request, "login.html", "Log in", None, {"failed": request.query.get("failed") == "1"})


async def login(request: web.Request) -> web.StreamResponse:
    # No session yet, so no CSRF token: refuse a login form posted from another site's page instead.
    origin = request.headers.get("Origin")
    if origin is not None and (origin == "null" or URL(origin).host != request.url.host):
        raise web.HTTPForbidden(text="login must be posted from this site")
    form = await request.post()
    token = str(form.get("token", "")).strip()
    tokens = site(request).tokens
    try:
        principal = await tokens.authenticate(token)
    except StoreUnavailable:
        raise web.HTTPServiceUnavailable(
            text="the review database is unavailable; try again shortly"
        ) from None
    if principal is None or not principal.may(Role.REVIEWER):
        # A service token opens the API only: it never becomes a review-site cookie.
        raise web.HTTPSeeOther("/review/login?failed=1")
    response = web.HTTPSeeOther("/review")
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
    set_login_cookie(response, token, secure)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    await _session(request)
    response = web.HTTPSeeOther("/review/login")
    clear_login_cookie(response)
    raise response


def add_page_routes(app: web.Application) -> None:
    # Auto-escaping on for every template: whatever an uploader, HMA or a policy file put in a field is
    # printed as text, never as markup.
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("gate.admin", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    r = app.router
    r.add_get("/review", guarded(queue_page))
    r.add_get("/review/login", login_form)
    r.add_post("/review/login", login)
    r.add_post("/review/logout", logout)
    r.add_get("/review/item/{id}", guarded(item_page))
    r.add_get("/review/item/{id}/preview.jpg", guarded(preview))
    r.add_get("/review/item/{id}/original", guarded(original))
    r.add_post(
        "/review/item/{id}/{action:reveal|release|confirm|reported|legal-hold|lift-hold}", guarded(action)
    )
