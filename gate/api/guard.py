"""Who may ask, how often, and how every answer under ``/api/`` looks when it is not a success.

Trust boundary: only an ``Authorization: Bearer`` token of the ``service`` or ``admin`` role opens the
API. The review page's login cookie never does: a cookie is sent by a browser on its own, so a page on
another site could make a reviewer's browser ask the oracle; a bearer header is sent only on purpose.
Every failure is an XRPC error (``{"error", "message"}``) — router misses and methods included — and
anything unexpected is a bare 500 that names nothing internal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from gate import answers, metrics
from gate.admin.tokens import Principal, Role
from gate.api.errors import ApiUnavailable, AuthRequired, Forbidden, MethodNotAllowed, NotFound, RateLimited
from gate.api.rate import RateLimit
from gate.api.service import Api
from gate.errors import PayloadTooLarge, XrpcError
from gate.store.pool import StoreUnavailable

log = logging.getLogger(__name__)

PREFIX = "/api/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# aiohttp's own refusals (the router's, the server's), as the API's errors.
_HTTP: dict[int, type[XrpcError]] = {404: NotFound, 413: PayloadTooLarge}


ERROR = web.ResponseKey("api_error", str)  # the XRPC error name an answer carries, for the metric


def xrpc_answer(exc: XrpcError) -> web.Response:
    response = answers.xrpc_json(exc.body(), exc.status, exc.headers)
    response[ERROR] = exc.error
    if exc.closes_connection:
        response.force_close()
    return response


def endpoint(request: web.Request) -> str:
    """The route's path template (a bounded metric label); ``other`` for paths no route has."""
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else ""
    return canonical if canonical.startswith(PREFIX) else "other"


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under ``/api/`` only: errors as XRPC JSON, and every answer counted by endpoint."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        response = await handler(request)
    except XrpcError as exc:
        response = xrpc_answer(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response = xrpc_answer(MethodNotAllowed(", ".join(sorted(exc.allowed_methods))))
        else:
            known = _HTTP.get(exc.status)
            response = xrpc_answer(known() if known else XrpcError())
    except Exception:
        log.exception("api: unhandled error on %s %s", request.method, endpoint(request))
        response = xrpc_answer(XrpcError())
    metrics.API_REQUESTS.labels(endpoint(request), response.get(ERROR, "ok")).inc()
    return response


async def authorize(request: web.Request, api: Api) -> Principal:
    """The caller, if its bearer token has the service (or admin) role and its rate allows; else 401,
    403, 429, or 503 while Postgres cannot say who holds the token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthRequired()
    try:
        who = await api.tokens.authenticate(token)
    except StoreUnavailable:
        raise ApiUnavailable() from None
    if who is None:
        raise AuthRequired("this bearer token is not one the gate knows (revoked or mistyped)")
    if not who.may(Role.SERVICE):
        log.warning("api: %s (role %s) was refused: the API needs the service role", who.name, who.role)
        raise Forbidden()
    wait = api.rate.take(who.name)
    if wait:
        raise RateLimited(RateLimit.retry_after(wait))
    return who
