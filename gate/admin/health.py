"""The private listener (``GATE_METRICS_LISTEN``): Prometheus metrics, liveness and readiness.

Never mounted on the public listener: metrics reveal block rates and readiness reveals which
matchers are down — useful to an attacker timing a bypass.

A scrape also asks what only a question can tell: each readiness check (``upload_gate_ready``) and the
evidence backlog in Postgres. Asked then, not by a timer: the values are as fresh as the scrape, and a
gate nobody scrapes asks nothing. Each question has ``SCRAPE_CHECK_TIMEOUT`` to answer, so a hung
dependency makes a slow scrape at worst, never a missing one.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from gate import metrics
from gate.admin.review_api import BODY_BYTES
from gate.answers import no_banner
from gate.deps import Deps
from gate.store.backlog import backlog
from gate.store.item import EvidenceState

ADMIN_DEPS = web.AppKey("admin_deps", Deps)
SCRAPE_CHECK_TIMEOUT = 4.0  # Prometheus's default scrape timeout is 10 s

log = logging.getLogger(__name__)


async def readiness(deps: Deps, within: float | None = None) -> dict[str, tuple[bool, str]]:
    """Every readiness check, run at once: {name: (ready, detail)}; each also sets its gauge."""
    names = list(deps.readiness)
    results = await asyncio.gather(
        *(asyncio.wait_for(deps.readiness[n](), within) for n in names), return_exceptions=True
    )
    report: dict[str, tuple[bool, str]] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            report[name] = (False, type(result).__name__)
        else:
            report[name] = result
        metrics.READY.labels(name).set(1 if report[name][0] else 0)
    return report


async def refresh_gauges(deps: Deps) -> None:
    """What /metrics asks before it answers (see the module docstring)."""
    evidence = deps.evidence

    async def waiting() -> None:
        if evidence is None:
            return
        try:
            found = await asyncio.wait_for(backlog(evidence.db), SCRAPE_CHECK_TIMEOUT)
        except Exception as exc:  # the evidence readiness check says so; the gauges keep their values
            log.debug("evidence backlog not read: %s", type(exc).__name__)
            return
        for state in (EvidenceState.HELD, EvidenceState.CONFIRMED, EvidenceState.REPORTED):
            metrics.EVIDENCE_ITEMS.labels(state.value).set(found.items[state])
        metrics.REVIEW_OLDEST_HELD_SECONDS.set(found.oldest_held_seconds)

    await asyncio.gather(readiness(deps, SCRAPE_CHECK_TIMEOUT), waiting())


async def metrics_view(request: web.Request) -> web.Response:
    await refresh_gauges(request.app[ADMIN_DEPS])
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
    report = await readiness(request.app[ADMIN_DEPS])
    ready = all(ok for ok, _ in report.values())
    checks = {name: {"ready": ok, "detail": detail} for name, (ok, detail) in report.items()}
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


def create_admin_app(deps: Deps) -> web.Application:
    # Bodies are decoded by the API's own reader (gate.proxy.body: capped, like uploads), not by aiohttp;
    # the review site's, when it joins this listener, have its own limit here too.
    app = web.Application(client_max_size=BODY_BYTES, handler_args={"auto_decompress": False})
    app.on_response_prepare.append(no_banner)  # no software version on the private listener either
    app[ADMIN_DEPS] = deps
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
