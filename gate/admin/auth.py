"""Who is asking, on the admin listener: a bearer token (API) or the review page's login cookie.

Trust boundary: the admin listener is private, but "private" is a network promise, not an identity.
Every review route calls ``require`` first. The cookie holds the token itself, so it is ``HttpOnly``
(no script reads it), ``SameSite=Strict`` (no other site's page sends it) and every state-changing POST
made with it must carry the page's CSRF token (bound to that login) — a belt to the SameSite braces.
Requests with an ``Authorization`` header carry no ambient credential and need no CSRF token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from gate.admin.signing import Signer
from gate.admin.tokens import Principal, Role, TokenStore
from gate.store.pool import DB_ERRORS, StoreUnavailable

COOKIE = "ug_review"
CSRF_FIELD = "csrf"


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    token: str
    via_cookie: bool
    csrf: str = ""  # the form token for this login (set by ``require``)

    @property
    def name(self) -> str:
        return self.principal.name


def _presented(request: web.Request) -> tuple[str, bool] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else None


UNAVAILABLE = '{"error": "Unavailable", "message": "the review database is unavailable; try again shortly"}'


async def authenticate(request: web.Request, tokens: TokenStore) -> Session | None:
    presented = _presented(request)
    if presented is None:
        return None
    try:
        principal = await tokens.authenticate(presented[0])
    except StoreUnavailable:
        # Nobody is let in while Postgres cannot say who holds a token; the caller is told why.
        raise web.HTTPServiceUnavailable(text=UNAVAILABLE, content_type="application/json") from None
    return Session(principal, presented[0], presented[1]) if principal else None


def _forbidden(message: str, page: bool) -> web.HTTPForbidden:
    """A 403 as the page shows it (text), or in the JSON API's shape."""
    if page:
        return web.HTTPForbidden(text=message)
    body = json.dumps({"error": "Forbidden", "message": message})
    return web.HTTPForbidden(text=body, content_type="application/json")


async def require(
    request: web.Request,
    tokens: TokenStore,
    signer: Signer,
    role: Role = Role.REVIEWER,
    *,
    page: bool = False,
) -> Session:
    """The caller's session, or an HTTP error: 401 (or a redirect to the login form for pages), 403 for
    the wrong role or a POST without its CSRF token, 503 while Postgres cannot answer."""
    session = await authenticate(request, tokens)
    if session is None:
        if page:
            raise web.HTTPSeeOther("/review/login")
        raise web.HTTPUnauthorized(
            text='{"error": "AuthRequired", "message": "a reviewer or admin bearer token is required"}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="upload-gate review"'},
        )
    if not session.principal.may(role):
        raise _forbidden(f"this needs the {role.value} role", page)
    try:
        await signer.ready()  # the key every replica shares (gate.admin.signing)
    except (*DB_ERRORS, StoreUnavailable):
        raise web.HTTPServiceUnavailable(text=UNAVAILABLE, content_type="application/json") from None
    session = Session(session.principal, session.token, session.via_cookie, signer.csrf(session.token))
    if request.method == "POST" and session.via_cookie:
        form = await request.post()
        presented = form.get(CSRF_FIELD)
        if not isinstance(presented, str) or not signer.check_csrf(session.token, presented):
            raise _forbidden("missing or stale form token: reload the page and try again", page)
    return session


def set_login_cookie(response: web.StreamResponse, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=secure, path="/")


def clear_login_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")
