"""The review page under ``/review``: server-rendered HTML, one small inline script, no build step.

Less human exposure by design: the queue shows reasons, matches and hashes; each item shows a blurred
greyscale derivative; the original appears only after the reviewer presses "Reveal", for
``GATE_REVEAL_SECONDS``, through a link bound to that reviewer — and the page records that a human saw it.
Every page view and action is audited by ``Review``. Login stores the token in an HttpOnly,
SameSite=Strict cookie; every form carries the CSRF token bound to that login.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape

from aiohttp import web
from yarl import URL

from gate.admin.auth import CSRF_FIELD, Session, clear_login_cookie, require, set_login_cookie
from gate.admin.review_api import NO_STORE, guarded, original, preview, site
from gate.admin.tokens import Role
from gate.quarantine.evidence import EvidenceItem, EvidenceState
from gate.store.pool import StoreUnavailable

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f4f4;color:#222}
header{background:#333;color:#fff;padding:.6em 1em;display:flex;gap:1em;align-items:center}
header a{color:#fff} main{padding:1em} table{border-collapse:collapse;background:#fff;width:100%}
td,th{border:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top} code{font-size:12px}
img.preview{width:160px;height:auto;filter:grayscale(1) blur(2px);background:#999}
img.revealed{max-width:480px;border:3px solid #c00} .msg{background:#ffe;border:1px solid #cc8;padding:.5em}
form.inline{display:inline-block;margin:.3em 1em .3em 0} .danger{color:#a00} nav a{margin-right:1em}
"""

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


def _page(title: str, body: str, session: Session | None, nonce: str, status: int = 200) -> web.Response:
    who = (
        f"<span>{escape(session.name)} ({session.principal.role.value})</span>"
        f'<form class="inline" method="post" action="/review/logout">{_csrf(session)}'
        '<button type="submit">Log out</button></form>'
        if session
        else ""
    )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · upload-gate review</title>"
        f'<style nonce="{nonce}">{STYLE}</style></head><body>'
        f'<header><strong>upload-gate review</strong><a href="/review">Queue</a>{who}</header>'
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    headers = {
        **{k: v for k, v in NO_STORE.items() if k != "Content-Security-Policy"},
        "Content-Security-Policy": (
            f"default-src 'none'; img-src 'self'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}';"
            " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        # same-origin, not no-referrer: with no-referrer Chromium posts forms with "Origin: null", and the
        # login check below needs the real origin (while other sites still learn nothing).
        "Referrer-Policy": "same-origin",
    }
    return web.Response(text=html, content_type="text/html", status=status, headers=headers)


def _csrf(session: Session | None) -> str:
    if session is None or not session.via_cookie:
        return ""
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(session.csrf)}">'


async def _session(request: web.Request, role: Role = Role.REVIEWER) -> Session:
    s = site(request)
    return await require(request, s.tokens, s.review.signer, role, page=True)


def _matches(item: EvidenceItem) -> str:
    rows = [
        f"{escape(str(m.get('source')))}:{escape(str(m.get('bank')))} {escape(str(m.get('signal')))}"
        + (f" d={escape(str(m.get('distance')))}" if m.get("distance") is not None else "")
        + (f" <code>{escape(str(m.get('content_id')))}</code>" if m.get("content_id") else "")
        for m in item.matches
    ]
    return "<br>".join(rows) or "—"


def _uploader(item: EvidenceItem) -> str:
    if item.verified_did:
        return f"<code>{escape(item.verified_did)}</code> (verified: {escape(item.verified_how or '')})"
    return f"<code>{escape(item.did or 'unknown')}</code> <em>(claimed only)</em>"


def _queue_rows(items: Iterable[EvidenceItem]) -> str:
    out = []
    for i in items:
        link = f"/review/item/{escape(i.decision_id)}"
        preview_img = (
            f'<img class="preview" alt="blurred preview" src="{link}/preview.jpg">' if i.has_bytes else "—"
        )
        out.append(
            f'<tr data-item="{escape(i.decision_id)}"><td>{preview_img}</td>'
            f'<td><a href="{link}">{escape(i.created_at.strftime("%Y-%m-%d %H:%M:%S"))}</a><br>'
            f"{escape(i.state.value)}{' · viewed' if i.human_viewed else ''}"
            f"{' · legal hold' if i.legal_hold else ''}</td>"
            f"<td>{escape(i.rule or '')}<br><small>{escape(i.reason or '')}</small></td>"
            f"<td>{_matches(i)}</td><td>{_uploader(i)}</td>"
            f"<td><code>{escape(i.sha256[:16])}…</code><br><small>{escape(i.media_type or '')}, {i.size} B</small></td></tr>"
        )
    return "".join(out)


async def queue_page(request: web.Request) -> web.Response:
    session = await _session(request)
    raw = request.query.get("state", "held")
    state = EvidenceState(raw) if raw in EvidenceState.__members__.values() else EvidenceState.HELD
    items = await site(request).review.queue(session.name, state)
    nav = " ".join(f'<a href="/review?state={s.value}">{s.value}</a>' for s in EvidenceState)
    body = (
        f"<nav>{nav}</nav><p>{len(items)} {escape(state.value)} item(s). Previews are blurred and greyscale; "
        "open an item to act on it.</p>"
        "<table><thead><tr><th>preview</th><th>held at / state</th><th>rule / reason</th><th>matches</th>"
        f"<th>uploader</th><th>file</th></tr></thead><tbody>{_queue_rows(items)}</tbody></table>"
    )
    return _page(f"Queue: {state.value}", body, session, secrets.token_urlsafe(12))


async def item_page(request: web.Request) -> web.Response:
    session = await _session(request)
    review = site(request).review
    item = await review.item(session.name, request.match_info["id"])
    link = f"/review/item/{escape(item.decision_id)}"
    nonce = secrets.token_urlsafe(12)
    parts: list[str] = []
    done = request.query.get("done", "")
    if done in MESSAGES:
        parts.append(f'<p class="msg" id="msg">{escape(MESSAGES[done])}</p>')
    token = request.query.get("reveal", "")
    revealing = bool(
        item.has_bytes and token and review.signer.check_reveal(token, session.name, item.decision_id)
    )
    if revealing:
        left = max(0, int(token.split(".", 1)[0]) - int(time.time()))
        parts.append(
            f'<p class="danger">Original shown for {left} s (audited).</p>'
            f'<img class="revealed" id="revealed" alt="original" src="{link}/original?t={escape(token)}">'
            # The one script: take the original off the screen when the link expires.
            f'<script nonce="{nonce}">setTimeout(function(){{var e=document.getElementById("revealed");'
            f"if(e){{e.remove();}}}},{left * 1000});</script>"
        )
    elif item.has_bytes:
        parts.append(f'<img class="preview" id="preview" alt="blurred preview" src="{link}/preview.jpg">')
    facts = [
        ("state", f"{item.state.value}{' (legal hold)' if item.legal_hold else ''}"),
        ("legal hold", _hold(item)),
        ("held at", item.created_at.isoformat()),
        ("rule / reason", f"{item.rule} / {item.reason}"),
        ("uploader", None),
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
    rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{_uploader(item) if v is None else escape(v)}</td></tr>"
        for k, v in facts
    )
    parts.append(f"<table>{rows}<tr><th>matches</th><td>{_matches(item)}</td></tr></table>")
    parts.append(_actions(item, session, link))
    return _page(f"Item {item.decision_id}", "".join(parts), session, nonce)


def _hold(item: EvidenceItem) -> str:
    if not item.legal_hold:
        return "none"
    since = item.legal_hold_at.isoformat(timespec="seconds") if item.legal_hold_at else "?"
    return f"since {since} by {item.legal_hold_by}: {item.legal_hold_reason}"


def _hold_actions(item: EvidenceItem, session: Session, link: str) -> str:
    """Admins place and lift legal holds; reviewers see the hold but not the forms."""
    if not session.principal.may(Role.ADMIN):
        return ""
    csrf = _csrf(session)
    if item.legal_hold:
        return (
            f'<form class="inline" method="post" action="{link}/lift-hold">{csrf}'
            '<input name="reason" id="lift_reason" placeholder="why it is lifted (optional)" maxlength="200"> '
            '<button id="lift-hold" type="submit">Lift legal hold</button></form>'
        )
    if not item.has_bytes:
        return ""
    return (
        f'<form class="inline" method="post" action="{link}/legal-hold">{csrf}'
        '<input name="reason" id="hold_reason" placeholder="matter (e.g. preservation request 2026-17)" '
        'required maxlength="200"> <button id="legal-hold" type="submit">Place legal hold</button></form>'
    )


def _actions(item: EvidenceItem, session: Session, link: str) -> str:
    csrf = _csrf(session)
    out = ["<h2>Actions</h2>"]
    if item.has_bytes:
        out.append(
            f'<form class="inline" method="post" action="{link}/reveal">{csrf}'
            '<button id="reveal" type="submit">Reveal original (audited)</button></form>'
        )
    if item.state in (EvidenceState.HELD, EvidenceState.CONFIRMED) and not item.legal_hold:
        out.append(
            f'<form class="inline" method="post" action="{link}/release">{csrf}'
            '<button id="release" type="submit">Release (false positive)</button></form>'
        )
    if item.state is EvidenceState.HELD:
        takedown = (
            '<label><input type="checkbox" id="takedown" name="takedown" value="1"> '
            "also take the account down on the PDS</label> "
            if session.principal.may(Role.ADMIN)
            else ""
        )
        out.append(
            f'<form class="inline" method="post" action="{link}/confirm">{csrf}{takedown}'
            '<button id="confirm" type="submit">Confirm (keep under legal retention)</button></form>'
        )
    if item.state in (EvidenceState.HELD, EvidenceState.CONFIRMED):
        out.append(
            f'<form class="inline" method="post" action="{link}/reported">{csrf}'
            '<input name="report_id" id="report_id" placeholder="CyberTipline report id" required maxlength="100"> '
            '<button id="reported" type="submit">Mark reported</button></form>'
        )
    out.append(_hold_actions(item, session, link))
    return "".join(out)


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
    failed = request.query.get("failed") == "1"
    body = (
        ('<p class="msg">That token was not accepted.</p>' if failed else "")
        + '<form method="post" action="/review/login"><label>Token <input type="password" id="token" '
        'name="token" autocomplete="off" required size="60"></label> <button id="login" type="submit">'
        "Log in</button></form><p>Tokens come from <code>upload-gate admin token add NAME</code>.</p>"
    )
    return _page("Log in", body, None, secrets.token_urlsafe(12))


async def login(request: web.Request) -> web.StreamResponse:
    # No session yet, so no CSRF token: refuse a login form posted from another site's page instead.
    origin = request.headers.get("Origin")
    if origin is not None and (origin == "null" or URL(origin).host != request.url.host):
        raise web.HTTPForbidden(text="login must be posted from this site")
    form = await request.post()
    token = str(form.get("token", "")).strip()
    tokens = site(request).tokens
    try:
        ok = await tokens.authenticate(token) is not None
    except StoreUnavailable:
        raise web.HTTPServiceUnavailable(
            text="the review database is unavailable; try again shortly"
        ) from None
    if not ok:
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
