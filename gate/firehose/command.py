"""``upload-gate watch [--firehose wss://HOST]``: judge the blobs of every new record on a firehose.

The firehose is a PDS's or a relay's ``com.atproto.sync.subscribeRepos``; by default the gate's own
upstream PDS (``GATE_UPSTREAM``, as a websocket URL). It runs as its own process beside ``serve``, on the
same settings, policy, banks and Postgres: decisions (``source = firehose``), evidence for the review
queue, labels (served by ``serve`` when it holds the labeler key), and its own metrics listener
(``GATE_WATCH_METRICS_LISTEN``: /metrics, /healthz, /readyz).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from aiohttp import web

from gate.admin.health import create_admin_app
from gate.deps import open_deps
from gate.errors import ConfigError
from gate.firehose.fetch import BlobFetcher
from gate.firehose.identity import Identities
from gate.firehose.progress import WatchState
from gate.firehose.publish import Publisher
from gate.firehose.report import Reporter
from gate.firehose.stream import xrpc_base
from gate.firehose.takedown import OwnTakedowns
from gate.firehose.watcher import FirehoseRefused, Watcher, WatchOptions
from gate.labels.key import LabelerKey
from gate.labels.store import LabelStore
from gate.logging_setup import configure_logging
from gate.pds_admin import PdsAdmin
from gate.policy.load import PolicyError
from gate.quarantine.evidence_command import Subparsers
from gate.quarantine.takedowns import Takedowns
from gate.scan.act import ScanActor
from gate.settings import Settings, SettingsError
from gate.store.pool import StoreUnavailable

log = logging.getLogger("gate.firehose")


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "watch",
        help="judge the blobs of new records on a firehose (a PDS or relay)",
        description="Subscribe to a PDS's or relay's firehose (com.atproto.sync.subscribeRepos) and judge "
        "every blob new records reference, with the gate's policy and banks: decisions, evidence for the "
        "review queue, labels. Runs beside serve, on the same settings and Postgres; resumes from its "
        "saved cursor.",
        epilog="""\
examples:
  upload-gate watch                                  the gate's own PDS (GATE_UPSTREAM)
  upload-gate watch --firehose wss://bsky.network
  upload-gate watch --firehose wss://bsky.network --reset-cursor""",
    )
    p.add_argument(
        "--firehose",
        help="wss://HOST of a PDS or relay (default: the gate's own upstream, GATE_UPSTREAM)",
    )
    p.add_argument(
        "--reset-cursor",
        action="store_true",
        help="forget the saved cursor of this firehose and start from its present",
    )
    p.set_defaults(func=cmd_watch)


def service_of(args: argparse.Namespace, settings: Settings) -> str:
    """The firehose's canonical name (its cursor's key): ``wss://host[:port]``."""
    raw = args.firehose or str(settings.upstream)
    return xrpc_base(raw).removesuffix("/xrpc")


async def watch(settings: Settings, service: str, reset: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_watch(settings, service, reset, stop)


async def run_watch(settings: Settings, service: str, reset: bool, stop: asyncio.Event) -> None:
    """Watch ``service`` until ``stop`` is set (or the firehose refuses: ``FirehoseRefused``)."""
    # Its own outage spool: serve's is locked by serve (one writer per spool).
    async with (
        # admitted: the watcher admits each blob's whole peak, its hashing worker's copy included.
        open_deps(settings, spool=settings.data_dir / "watch" / "spool", admitted=True) as deps,
        contextlib.AsyncExitStack() as stack,
    ):
        jobs = [
            asyncio.create_task(job())
            for job in deps.background
            if job != getattr(deps.labeler, "watch", None)
        ]
        fetcher = BlobFetcher(settings.max_upload_bytes, settings.firehose_fetch_timeout)
        await fetcher.start()
        stack.push_async_callback(fetcher.close)
        own = (settings.pds_public_url, settings.upstream) if settings.pds_public_url else None
        identities = Identities(
            settings.plc_url,
            own_pds=own,
            allowed=[settings.upstream, *settings.firehose_pds_origins],
        )
        stack.push_async_callback(identities.aclose)
        state = WatchState(deps.database.pool, service)
        if reset:
            await state.reset()
        if settings.labeler_did is None and deps.policy.current.firehose.labels:
            log.warning(
                "the policy names [[firehose.labels]] but GATE_LABELER_DID is not set: no labels are made"
            )
        watcher = Watcher(
            service,
            judge=deps.judge,
            sink=deps.sink,
            vault=deps.evidence.vault,
            state=state,
            identities=identities,
            fetcher=fetcher,
            publisher=Publisher(
                deps.policy,
                LabelStore(deps.database.pool),
                settings.labeler_did,
                await _reporter(settings, stack),
            ),
            budget=deps.budget,
            options=WatchOptions(
                workers=settings.firehose_workers,
                queue_size=settings.firehose_queue_size,
            ),
            takedowns=OwnTakedowns(
                identities,
                ScanActor(
                    None,
                    Takedowns(
                        deps.database.pool, PdsAdmin.from_settings(settings), settings.takedown_daily_cap
                    ),
                    "gate:firehose",
                ),
            ),
        )
        if deps.policy.current.firehose.takedown and own is None:
            log.warning(
                "the policy's [firehose] takedown = true, but GATE_PDS_PUBLIC_URL is not set: no PDS is known "
                "to be ours, so nothing is taken down"
            )
        elif deps.policy.current.firehose.takedown and not settings.pds_admin_password:
            log.warning(
                "the policy's [firehose] takedown = true, but GATE_PDS_ADMIN_PASSWORD is not set: each "
                "takedown is refused and recorded as such"
            )
        if settings.watch_metrics_listen is not None:
            runner = web.AppRunner(create_admin_app(deps), access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, *settings.watch_metrics_listen).start()
            # The address as bound (port 0 = any free port), so scrape configs and tests can find it.
            for host, port, *_ in runner.addresses:
                log.info("watch metrics listening on %s:%d", host, port)
        task = asyncio.create_task(watcher.run())
        waiter = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # raises FirehoseRefused (or another failure) if it ended by itself
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)


async def _reporter(settings: Settings, stack: contextlib.AsyncExitStack) -> Reporter | None:
    """The moderation service's client, when GATE_REPORT_SERVICE_URL is set: reports are signed with the
    labeler's key, so then (only then) the watcher needs it."""
    if settings.report_service_url is None or settings.report_service_did is None:
        return None
    key = LabelerKey.configured(settings.labeler_key_file, settings.labeler_key)
    if key is None or settings.labeler_did is None:
        raise ConfigError(
            "GATE_REPORT_SERVICE_URL: reports are signed as the labeler; set GATE_LABELER_DID and "
            "GATE_LABELER_KEY_FILE (or GATE_LABELER_KEY) for upload-gate watch too"
        )
    reporter = Reporter(settings.report_service_url, settings.report_service_did, key, settings.labeler_did)
    await reporter.start()
    stack.push_async_callback(reporter.close)
    return reporter


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(env_file=Path(args.env_file) if args.env_file else None)
        service = service_of(args, settings)
    except (SettingsError, ValueError) as exc:
        return _fatal(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(watch(settings, service, args.reset_cursor))
    except FirehoseRefused as exc:
        return _fatal(str(exc))
    except PolicyError as exc:
        return _fatal(f"the policy {settings.policy_path} is invalid, not starting:\n{exc}")
    except (ConfigError, StoreUnavailable, OSError) as exc:
        return _fatal(f"cannot watch: {exc}")
    return 0


def _fatal(message: str) -> int:
    import sys

    print(f"upload-gate: {message}", file=sys.stderr)
    return 2
