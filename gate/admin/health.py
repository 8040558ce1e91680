"""The private listener (``GATE_METRICS_LISTEN``): Prometheus metrics, liveness and readiness.

Never mounted on the public listener: metrics reveal block rates and readiness reveals which
matchers are down — useful to an attacker timing a bypass.
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from gate.answers import no_banner
from gate.deps import Deps

ADMIN_DEPS = web.AppKey("admin_deps", Deps)


async def metrics_view(request: web.Request) -> web.Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # serve --workers: every worker's counters, summed (gate.workers explains the choice).
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: policy loaded, matchers reachable, decision log accepting."""
    checks = request.app[ADMIN_DEPS].readiness
    names = list(checks)
    results = await asyncio.gather(*(checks[n]() for n in names), return_exceptions=True)
    report: dict[str, dict[str, object]] = {}
    ready = True
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            ok, detail = False, type(result).__name__
        else:
            ok, detail = result
        ready = ready and ok
        report[name] = {"ready": ok, "detail": detail}
    return web.json_response({"ready": ready, "checks": report}, status=200 if ready else 503)


def create_admin_app(deps: Deps) -> web.Application:
    app = web.Application()
    app.on_response_prepare.append(no_banner)  # no software version on the private listener either
    app[ADMIN_DEPS] = deps
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
