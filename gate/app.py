"""The public listener's application: every request either is an upload (judged) or passes through.

Trust boundary: this listener faces the internet (behind Caddy/nginx at most). It serves nothing of
its own — no metrics, no admin — only the PDS's routes, with uploads judged on the way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gate import answers, metrics
from gate.deps import Deps
from gate.errors import InvalidRequest, ShuttingDown, XrpcError
from gate.heap import frozen_heap
from gate.labels import xrpc as labels_xrpc
from gate.pipeline import UploadPipeline
from gate.proxy.body import BodyLimits, BodyReader
from gate.proxy.connection import Connection
from gate.proxy.drain import Drain
from gate.proxy.forwarded import TrustedProxies, resolve
from gate.proxy.front import Front
from gate.proxy.headers import not_utf8
from gate.proxy.ip_slots import IpSlots
from gate.proxy.lifecycle import answer_then_linger, is_websocket
from gate.proxy.routing import is_get_blob, is_upload
from gate.proxy.target import origin_form

log = logging.getLogger(__name__)

DEPS = web.AppKey("deps", Deps)
PIPELINE = web.AppKey("pipeline", UploadPipeline)
DRAIN = web.AppKey("drain", Drain)
SLOTS = web.AppKey("upload_slots", IpSlots)
TRUSTED = web.AppKey("trusted_proxies", TrustedProxies)
# Plain GETs served before aiohttp's server (gate.proxy.front); absent when the PDS is not plain HTTP.
FRONT = web.AppKey("front", Front)
# The request's origin form (gate.proxy.target), computed once by public_middleware before routing.
TARGET = web.RequestKey("target", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refuse_undecodable_headers(request: web.Request) -> None:
    """Before any path (passthrough, upload, websocket): a header value that is not UTF-8 cannot be sent
    on unchanged (gate.proxy.headers), so the request gets a clear 400 naming the header, not its value."""
    name = not_utf8(request.headers)
    if name is not None:
        metrics.REFUSED_HEADERS.labels("not_utf8").inc()
        raise InvalidRequest(f"The value of header {name[:100]} is not UTF-8")


def xrpc_error(exc: XrpcError) -> web.Response:
    response = answers.xrpc_json(exc.body(), exc.status, exc.headers)
    if exc.closes_connection:
        response.force_close()
    return response


def public_middleware(drain: Drain) -> Middleware:
    """The public app's one middleware (one layer every request passes, not one per concern): the
    request's life for its connection and the drain (``gate.proxy.lifecycle``), its target checked
    before the router sees it, and the error tree mapped to XRPC JSON — anything unexpected is a bare
    500 with no internals."""

    @web.middleware
    async def public(request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = Connection.of(request)
        if connection is not None:
            connection.request_started()
        counted = not is_websocket(request)  # a websocket is not waited for: the firehose never ends
        if counted:
            drain.request_started()
        try:
            try:
                # Before the router: a target it cannot match ("*") gets the same clear 400 as any other.
                request[TARGET] = origin_form(request.raw_path)
                refuse_undecodable_headers(request)
                response = await handler(request)
            except XrpcError as exc:
                response = xrpc_error(exc)
            except web.HTTPException:
                raise
            except Exception:
                log.exception("unhandled error on %s", request.method)
                response = xrpc_error(XrpcError())
            if counted and drain.started:
                response.force_close()
                if not request.content.is_eof():
                    await answer_then_linger(request, response)
            return response
        finally:
            if counted:
                drain.request_done()
            if connection is not None:
                connection.request_finished(request.content)

    return public


async def dispatch(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    fwd = resolve(
        request.remote,
        request.headers.get("X-Forwarded-For"),
        request.headers.get("X-Forwarded-Proto"),
        request.scheme,
        request.app[TRUSTED],
    )
    # Routing on the raw path (its origin form), case-folded: see gate.proxy.target and
    # gate.proxy.routing for the spellings the PDS accepts.
    target = request[TARGET]
    if is_upload(request.method, target):
        # Both refusals come before a byte of the body is read, so before any verdict.
        if request.app[DRAIN].started:
            metrics.SHUTDOWN_REFUSALS.labels("new").inc()
            raise ShuttingDown()
        with request.app[SLOTS].slot(fwd.client_ip):
            return await request.app[PIPELINE].handle(request, fwd, target)
    if is_get_blob(request.method, target) and deps.withheld.withholds(request.query.getall("cid", [])):
        # A blob the gate blocked is never fetched from the PDS: answered as the PDS answers a missing one.
        metrics.WITHHELD_REQUESTS.inc()
        return answers.blob_not_found()
    if is_websocket(request):
        return await deps.upstream.websocket(request, fwd, target)
    return await deps.upstream.passthrough(request, fwd, target)


def create_app(deps: Deps, drain: Drain | None = None) -> web.Application:
    drain = drain if drain is not None else Drain(deps.settings.drain_timeout)
    # client_max_size does not apply: bodies are streamed or read by gate.proxy.body with our own cap.
    app = web.Application(
        middlewares=[public_middleware(drain)],
        handler_args={"auto_decompress": False},
    )
    app.on_response_prepare.append(answers.on_prepare)  # CORS and no banner on every answer
    app[DEPS] = deps
    app[DRAIN] = drain
    settings = deps.settings
    app[SLOTS] = IpSlots(settings.max_uploads_per_ip)
    app[TRUSTED] = TrustedProxies(settings.trusted_proxies)
    app[PIPELINE] = UploadPipeline(
        deps.judge,
        deps.upstream,
        deps.sink,
        body=BodyReader(BodyLimits.from_settings(settings), drain),
        budget=deps.budget,
        offline=deps.offline,
        evidence=deps.evidence.vault,
        withheld=deps.withheld,
    )
    if deps.labeler is not None:  # the labeler's queryLabels and subscribeLabels, ahead of the passthrough
        labels_xrpc.install(app, deps.labeler)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    lane_pass = deps.upstream.lane_pass
    if lane_pass is not None:
        app[FRONT] = Front(lane_pass, app[TRUSTED], drain)
    app.cleanup_ctx.append(frozen_heap)  # the parts above are built: what is live now lives as long
    return app
