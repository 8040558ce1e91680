"""``upload-gate serve``: the public proxy listener and the private metrics/health listener.

``run_gate`` is also what the tests use, so they exercise exactly the process operators run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gate.admin.health import create_admin_app
from gate.admin.review_app import create_review_app, install_review, open_review
from gate.api.routes import install_api
from gate.api.service import open_api
from gate.app import FRONT, create_app
from gate.deps import Deps, open_deps
from gate.errors import ConfigError
from gate.logging_setup import configure_logging
from gate.policy.load import PolicyError
from gate.proxy.drain import Drain, stop_bound
from gate.proxy.listener import PublicListener
from gate.quarantine.keys import KeyringError, MissingEvidenceKey
from gate.settings import Settings, SettingsError
from gate.workers import gather_orphans, run_workers, worker_index

log = logging.getLogger("gate")


@dataclass(frozen=True)
class RunningGate:
    deps: Deps
    public: tuple[str, int]
    admin: tuple[str, int]
    review: tuple[str, int] | None = None  # GATE_ADMIN_LISTEN, when the review site has its own listener

    @property
    def url(self) -> str:
        return f"http://{self.public[0]}:{self.public[1]}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin[0]}:{self.admin[1]}"

    @property
    def review_url(self) -> str:
        """Where the admin API and review page are: their own listener, else the metrics listener."""
        return f"http://{self.review[0]}:{self.review[1]}" if self.review else self.admin_url


async def _start(
    app: web.Application, host: str, port: int, stack: contextlib.AsyncExitStack, *, reuse_port: bool = False
) -> tuple[str, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=30)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    addr = runner.addresses[0]
    return str(addr[0]), int(addr[1])


@contextlib.asynccontextmanager
async def run_gate(settings: Settings) -> AsyncIterator[RunningGate]:
    """The gate's listeners and parts; as worker ``i`` of ``--workers`` (gate.workers), the public
    listener shares its port (SO_REUSEPORT) and only worker 0 runs the admin listener."""
    worker = worker_index()
    async with open_deps(settings) as deps, contextlib.AsyncExitStack() as stack:
        tasks = [asyncio.create_task(job()) for job in deps.background]

        async def stop_background() -> None:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        stack.push_async_callback(stop_background)
        admin = ("", 0)
        review = None
        if worker in (None, 0):  # one admin listener (and review site) per host, not per worker
            admin_app = create_admin_app(deps)
            review_app: web.Application | None = None
            # The review site only ever joins a private listener (see gate.admin.review_app).
            site = await open_review(
                settings, deps.evidence, deps.database.pool, deps.policy, deps.allowlist, deps.notifier
            )
            if settings.admin_listen is None:
                install_review(admin_app, site)
            else:
                review_app = create_review_app(site)
            # The hash/match/scan API joins the review site, on a private listener only (gate.api).
            install_api(review_app if review_app is not None else admin_app, open_api(deps))
            admin = await _start(admin_app, *settings.metrics_listen, stack)
            if review_app is not None and settings.admin_listen is not None:
                review = await _start(review_app, *settings.admin_listen, stack)
        # The public listener starts last and (on exit) stops first: it drains (gate.proxy.drain), so
        # in-flight uploads finish while their dependencies are still open.
        drain = Drain(settings.drain_timeout)
        app = create_app(deps, drain)
        listener = PublicListener(app, drain, settings.header_timeout, stop_bound(settings), app.get(FRONT))
        public = await listener.start(*settings.listen, reuse_port=worker is not None)
        stack.push_async_callback(listener.close)
        log.info("gate listening on %s:%d → %s (admin %s:%d)", *public, settings.upstream, *admin)
        yield RunningGate(deps, public, admin, review)


async def serve_forever(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with run_gate(settings) as gate:
        gate.deps.policy.install_sighup(loop)
        await stop.wait()
        log.info("shutting down: draining in-flight uploads (bodies get %g s)", settings.drain_timeout)


def fatal(message: str) -> int:
    """A reason not to start, on stderr (stdout is for what a command outputs, never for errors)."""
    print(f"upload-gate: {message}", file=sys.stderr)
    return 2


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(env_file=Path(args.env_file) if args.env_file else None)
    except SettingsError as exc:
        return fatal(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    if args.workers > 1 and worker_index() is None:
        try:
            return run_workers(settings, args.workers, _worker_args(args))
        except OSError as exc:  # e.g. the embedded Postgres, which the supervisor starts, would not
            return fatal(f"cannot start: {exc}")
    if worker_index() is None:  # workers are spared: their supervisor already did this for them
        gather_orphans(settings.data_dir, 1, settings.spool_max_bytes)
    try:
        asyncio.run(serve_forever(settings))
    except PolicyError as exc:
        return fatal(f"the policy {settings.policy_path} is invalid, not starting:\n{exc}")
    except MissingEvidenceKey as exc:
        return fatal(f"no evidence key, not starting: {exc}")
    except KeyringError as exc:
        return fatal(f"the evidence keyring is unusable, not starting: {exc}")
    except ConfigError as exc:  # the banks, the labeler key: what the operator configured, said as such
        return fatal(f"cannot start: {exc}")
    except OSError as exc:
        return fatal(f"cannot start: {exc}")
    return 0


def _worker_args(args: argparse.Namespace) -> list[str]:
    """The command line a worker runs: the same gate, one process (its settings come from the env)."""
    return ([f"--env-file={args.env_file}"] if args.env_file else []) + ["serve"]


def _workers(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("--workers must be at least 1")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the gate (settings from GATE_* environment variables)",
        description="Run the gate: the public listener (GATE_LISTEN) in front of the PDS (GATE_UPSTREAM), "
        "and the private one (GATE_METRICS_LISTEN) with /metrics, /healthz, /readyz, the review site and "
        "the hash/match/scan API (/api/v1). "
        "It stops on an invalid policy or settings with a message saying what to fix; SIGHUP re-reads "
        "the policy, SIGTERM drains in-flight uploads and exits.",
        epilog="""\
examples:
  upload-gate serve
  upload-gate serve --env-file /etc/upload-gate/gate.env
  upload-gate serve --workers 4          four processes on one port, for hosts with more cores""",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="gate processes sharing the public port (SO_REUSEPORT), each with its own hashing pool",
    )
    p.set_defaults(func=cmd_serve)
