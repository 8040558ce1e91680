"""``upload-gate scan``: judge every blob the PDS already stores (backfill).

    upload-gate scan [--blobstore DIR] [--concurrency N] [--blobs-per-second R] [--bytes-per-second B]
                     [--rescan] [--did DID ...] [--no-records] [--progress auto|bar|lines|none] [--json]
    upload-gate scan problems [--limit N] [--json]     what scans could not judge, and why
    upload-gate scan retro [--since WHEN] [--hma] [--json] [--metrics-file PATH]

It talks to the PDS at GATE_UPSTREAM (``--pds`` to override) with the admin password
(GATE_PDS_ADMIN_PASSWORD: deactivated and taken-down repos are readable only so, and ``takedown`` needs
it), judges with the gate's policy, banks and HMA, and writes to the gate's Postgres — the same settings
(environment or ``--env-file``) the gate runs with. Safe to stop at any time (Ctrl-C, SIGTERM, a kill):
the next run resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from functools import partial
from pathlib import Path

from gate.blob_fetch import BlobSource, BlobUnavailable, DiskBlobs, PdsSync
from gate.cli import positive_arg, when_arg
from gate.errors import ConfigError, Unavailable
from gate.logging_setup import configure_logging
from gate.proxy.budget import MemoryBudget
from gate.record import DecisionRecord
from gate.scan.act import ScanActor
from gate.scan.bank_diff import added
from gate.scan.metrics_file import MetricsFile, scan_metrics
from gate.scan.parts import open_parts
from gate.scan.progress import Progress, Tally
from gate.scan.retro import EPOCH, RetroHunt, window_start
from gate.scan.retro_metrics_file import INTERVAL as RETRO_INTERVAL
from gate.scan.retro_metrics_file import RetroMetrics
from gate.scan.scanner import Scanner, ScanOptions
from gate.scan.store import ScanStore, insert_decision
from gate.settings import Settings, SettingsError, parse_rate, parse_url
from gate.store.command import with_pool
from gate.store.pool import Pool

log = logging.getLogger("gate.scan")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "scan",
        help="judge every blob the PDS already stores (resumable)",
        description="Judge every blob the PDS already stores — every repo listRepos names, active or not, "
        "every blob listBlobs lists, the bytes from getBlob or the PDS's disk blob store — with the gate's "
        "policy, banks and HMA, and record each as a decision (source backfill). The policy's [scan] table "
        "says what happens to a blob a rule blocks (withhold, review, takedown). Safe to stop at any time: "
        "the next run resumes where this one stopped and reads nothing it has recorded.",
        epilog="""\
examples:
  upload-gate scan
  upload-gate scan --blobs-per-second 50 --bytes-per-second 20M --concurrency 4
  upload-gate scan --blobstore /pds/blocks
  upload-gate scan --did did:plc:abc --rescan --no-records""",
    )
    p.add_argument("--pds", type=parse_url, help="the PDS's URL (default: GATE_UPSTREAM)")
    p.add_argument(
        "--blobstore",
        type=Path,
        help="read blob files from the PDS's disk blob store (PDS_BLOBSTORE_DISK_LOCATION) instead of getBlob",
    )
    p.add_argument(
        "--concurrency", type=_positive, default=4, help="blobs read and judged at once (default 4)"
    )
    p.add_argument(
        "--blobs-per-second", type=parse_rate, default=0, help="at most this many blobs/s (0: no limit)"
    )
    p.add_argument(
        "--bytes-per-second",
        type=parse_rate,
        default=0,
        help="at most this many bytes/s, e.g. 20M (0: no limit)",
    )
    p.add_argument("--rescan", action="store_true", help="read and judge everything again, recorded or not")
    p.add_argument("--did", action="append", default=[], help="scan only this repo (repeatable)")
    p.add_argument(
        "--no-records",
        dest="records",
        action="store_false",
        help="do not read each repo (getRepo) to name the records that reference each blob",
    )
    p.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto")
    p.add_argument("--progress-interval", type=float, default=10.0, help="seconds between progress lines")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument(
        "--metrics-file",
        type=Path,
        help="write the scan's counts to this Prometheus text file every progress interval and at the end "
        "(for node_exporter's textfile collector)",
    )
    p.set_defaults(func=run)
    what = p.add_subparsers(dest="scan_what", metavar="{retro,problems}")
    r = what.add_parser(
        "retro",
        help="re-judge stored decisions against every bank entry now (on demand)",
        description="A retro-hunt on demand: every stored decision's hashes matched against every entry of "
        "the local banks as they are now (the gate does this by itself for the entries a bank reload adds), "
        "hits re-judged under the current policy, recorded (source retro) and acted on per [scan]; with "
        "--hma, stored PDQ hashes are looked up in HMA again at GATE_RETRO_HMA_RATE. Retro-hunts run one at "
        "a time across every process on the gate's Postgres: this waits for one under way (the gate's, "
        "another replica's) and re-judges nothing that one did.",
        epilog="examples:\n  upload-gate scan retro --since 30d\n  upload-gate scan retro --since 7d --hma --json",
    )
    r.add_argument("--since", type=when_arg, help="decisions since (30d, 2026-01-31); default: the whole log")
    r.add_argument(
        "--hma",
        action="store_true",
        help="also look every stored PDQ hash since --since (default 30d) up in HMA again, at "
        "GATE_RETRO_HMA_RATE; a failed lookup stops it (exit status 1)",
    )
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    r.add_argument(
        "--metrics-file",
        type=Path,
        help="write the hunt's runs (upload_gate_retro_runs_total, counted on across runs) and counts to "
        "this Prometheus text file as it goes and at the end (for node_exporter's textfile collector)",
    )
    r.set_defaults(func=run_retro)
    q = what.add_parser(
        "problems",
        help="the blobs and repos scans could not judge, with the reason",
        description="List the blobs and repos that scans could not judge — a blob the PDS would not serve, "
        "bytes that are not their CID, a file missing from the blob store, a blob over the size limit, a "
        "repo the PDS refused — with what the PDS or the disk said. Transient ones are tried again by the "
        "next scan.",
        epilog="examples:\n  upload-gate scan problems\n  upload-gate scan problems --limit 20 --json",
    )
    q.add_argument("--limit", type=positive_arg, default=100, help="at most this many of each (default 100)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_problems)


def _positive(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 256:
        raise argparse.ArgumentTypeError("expected an integer in 1–256")
    return int(raw)


def run_problems(args: argparse.Namespace) -> int:
    async def work(pool: Pool) -> int:
        found = await ScanStore(pool).problems(args.limit)
        if args.json:
            print(json.dumps(found, sort_keys=True))
            return 0
        for b in found["blobs"]:
            print(f"blob {b['did']} {b['cid']}: {b['problem']} (retried: {b['retried']}): {b['detail']}")
        for r in found["repos"]:
            print(f"repo {r['did']}: {r['error']}")
        if not found["blobs"] and not found["repos"]:
            print("no problems recorded")
        return 0

    return with_pool(args, work)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(env_file=Path(args.env_file) if args.env_file else None)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.blobstore is not None and not args.blobstore.is_dir():
        print(f"upload-gate scan: --blobstore {args.blobstore} is not a directory", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    tally = Tally()
    try:
        return asyncio.run(_scan(args, settings, tally))
    except KeyboardInterrupt:
        print("scan stopped; run it again to resume", file=sys.stderr)
        return 130


async def _scan(args: argparse.Namespace, settings: Settings, tally: Tally) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with open_parts(settings) as parts:
            scan = parts.policy.current.scan
            if scan is None:
                print(
                    "upload-gate scan: the policy has no [scan] table: say what a scan does with blobs a rule"
                    " blocks (config/policy.toml documents it)",
                    file=sys.stderr,
                )
                return 2
            sync = PdsSync(
                args.pds or settings.upstream,
                admin_password=settings.pds_admin_password,
                max_bytes=settings.max_upload_bytes,
                connections=args.concurrency + 1,
            )
            async with sync:
                blobs: BlobSource = (
                    DiskBlobs(args.blobstore, settings.max_upload_bytes) if args.blobstore else sync
                )
                options = ScanOptions(
                    concurrency=args.concurrency,
                    blobs_per_second=args.blobs_per_second,
                    bytes_per_second=args.bytes_per_second,
                    rescan=args.rescan,
                    only=frozenset(args.did),
                    records=args.records,
                )
                actor = ScanActor(parts.evidence.vault, parts.takedowns, "gate:scan")
                scanner = Scanner(
                    parts.judge, sync, blobs, ScanStore(parts.pool), actor, tally, options, parts.notify,
                    budget=MemoryBudget(settings.memory_budget_bytes),
                )  # fmt: skip
                metrics_file = (
                    MetricsFile(args.metrics_file, partial(scan_metrics, tally), args.progress_interval)
                    if args.metrics_file
                    else None
                )
                async with contextlib.AsyncExitStack() as stack:
                    if metrics_file is not None:
                        await stack.enter_async_context(metrics_file)
                    with Progress(tally, mode=args.progress, interval=args.progress_interval):
                        await scanner.run()
                    if metrics_file is not None:
                        metrics_file.finish()
    except asyncio.CancelledError:
        print("scan stopped; run it again to resume", file=sys.stderr)
        return 130
    except BlobUnavailable as exc:
        print(f"upload-gate scan: cannot list the PDS's repos: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, Unavailable, OSError) as exc:
        print(f"upload-gate scan: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(tally.to_json() + "\n" if args.json else tally.summary_text())
    return 0


def run_retro(args: argparse.Namespace) -> int:
    """Every entry of the local banks as if just added, against the stored decisions since ``--since``;
    hits judged, recorded (source "retro") and acted on per [scan] — the same as the gate does after a
    reload, on demand."""
    try:
        settings = Settings.from_env(env_file=Path(args.env_file) if args.env_file else None)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)

    async def main() -> int:
        try:
            async with open_parts(settings) as parts:
                s = settings
                actor = ScanActor(parts.evidence.vault, parts.takedowns, "gate:retro")

                async def record(r: DecisionRecord) -> None:
                    await insert_decision(parts.pool, r)
                    parts.notify(r)

                async with contextlib.AsyncExitStack() as stack:
                    figures = RetroMetrics(args.metrics_file) if args.metrics_file else None
                    written = (
                        MetricsFile(args.metrics_file, figures, RETRO_INTERVAL)
                        if figures is not None
                        else None
                    )
                    if written is not None:
                        await stack.enter_async_context(written)  # left after a hunt that raised too
                    sync = await stack.enter_async_context(
                        PdsSync(s.upstream, admin_password=s.pds_admin_password, max_bytes=s.max_upload_bytes)
                    )
                    budget = MemoryBudget(settings.memory_budget_bytes)  # the process's own, as a scan's
                    hunt = RetroHunt(parts.pool, parts.judge, actor, record, blobs=sync, budget=budget)
                    since = args.since or EPOCH
                    tally = await hunt.run(added(None, parts.banks.banks), since)
                    summary: dict[str, object] = {"local": tally.summary()}
                    if figures is not None:
                        figures.tallies["bank"] = tally
                    stopped: str | None = None
                    if args.hma:
                        window = args.since or window_start(s.retro_hma_window_days)
                        hma = await hunt.hma_pass(window, s.retro_hma_rate, "retro: on demand")
                        summary["hma"], stopped = hma.summary(), hma.stopped
                        if figures is not None:
                            figures.tallies["hma"] = hma
                    if written is not None and stopped is None:
                        written.finish()
        except (ConfigError, Unavailable, OSError) as exc:
            print(f"upload-gate scan retro: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(summary, sort_keys=True) if args.json else _retro_text(summary))
        if stopped is not None:  # the rest of the window was not looked up: not a clean run
            print(f"upload-gate scan retro: the HMA pass stopped: {stopped}", file=sys.stderr)
            return 1
        return 0

    return asyncio.run(main())


def _retro_text(summary: dict[str, object]) -> str:
    return "\n".join(f"{part}: {json.dumps(values, sort_keys=True)}" for part, values in summary.items())
