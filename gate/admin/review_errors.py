"""Every answer under ``/admin/api/`` that is not a success is an XRPC error, as the OpenAPI document says
(``gate.admin.review_spec``): the handlers' own refusals already are; this middleware makes the rest so —
the router's misses and wrong methods, a body over the review site's size limit, and anything unexpected
(a bare 500 that names nothing internal; the details go to the log only)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from gate.answers import xrpc_json
from gate.api.errors import MethodNotAllowed, NotFound
from gate.errors import PayloadTooLarge, XrpcError

log = logging.getLogger(__name__)

PREFIX = "/admin/api/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _answer(exc: XrpcError) -> web.Response:
    return xrpc_json(exc.body(), exc.status, exc.headers)


def _as_xrpc(exc: web.HTTPException) -> XrpcError:
    """aiohttp's own refusals (the router's, the body reader's) as the API's errors."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(", ".join(sorted(exc.allowed_methods)))
    if exc.status == 404:
        return NotFound("no such review API endpoint")
    if exc.status == 413:
        return PayloadTooLarge("the body is over the review API's size limit")
    return XrpcError()


@web.middleware
async def review_api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except XrpcError as exc:
        return _answer(exc)  # the handlers' own refusals (gate.admin.review_api.BadRequest)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise  # not an error, or a refusal already in the API's shape (gate.admin.auth, review_api)
        return _answer(_as_xrpc(exc))
    except Exception:
        log.exception("review api: unhandled error on %s %s", request.method, request.path)
        return _answer(XrpcError())
