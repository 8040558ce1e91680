"""``upload-gate hma check``: is the configured HMA usable? Status, banks, index sizes, round trip.

Exit status 0 when HMA is ready, 1 when it is unreachable, not ready or answers nonsense, 2 when no HMA
is configured. Prints nothing secret: HMA has no credentials, and no upload data is involved.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from gate.matching.hma_client import HmaCallError, HmaClient
from gate.settings import Settings, SettingsError

ROUND_TRIPS = 5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hma = subparsers.add_parser(
        "hma",
        help="HMA (OpenMediaMatch) tools",
        description="Tools for the Hasher-Matcher-Actioner the gate looks uploads up in (GATE_HMA_URL).",
        epilog="examples:\n  upload-gate hma check",
    )
    sub = hma.add_subparsers(dest="hma_command", required=True, metavar="HMA_COMMAND")
    check = sub.add_parser(
        "check",
        help="print HMA's status, banks, index sizes and a round-trip time",
        description="Is the configured HMA usable? Prints its status, banks, index sizes and a round-trip "
        "time. Exit status 0 when HMA is ready, 1 when it is unreachable, not ready or answers nonsense, "
        "2 when no HMA is configured.",
        epilog="""\
examples:
  upload-gate hma check
  upload-gate hma check --url http://hma:5100""",
    )
    check.add_argument("--url", help="HMA base URL (default: GATE_HMA_URL)")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    url: str | None = args.url
    timeout = 5.0
    if url is None:
        try:
            settings = Settings.from_env(env_file=Path(args.env_file) if args.env_file else None)
        except SettingsError as exc:
            print(exc)
            return 2
        if settings.hma_url is None:
            print("no HMA configured: set GATE_HMA_URL or pass --url")
            return 2
        url, timeout = str(settings.hma_url), settings.hma_timeout
    return asyncio.run(check(url, timeout))


async def check(url: str, within: float) -> int:
    client = HmaClient(url, timeout=max(within, 5.0), connect_timeout=min(within, 5.0), max_connections=1)
    ok = True
    print(f"HMA        {url}")
    try:
        status = await client.status()
        ok &= status.ready
        print(f"status     {status.detail} ({'ready' if status.ready else 'NOT READY'})")
        if not status.reachable:
            return 1
        times = []
        for _ in range(ROUND_TRIPS):
            started = time.perf_counter()
            await client.live()
            times.append((time.perf_counter() - started) * 1000)
        print(f"round trip {statistics.median(times):.1f} ms (median of {ROUND_TRIPS} GET /status/live)")
        banks = await client.banks()
        print(f"banks      {len(banks)}")
        for bank in sorted(banks, key=lambda b: b.name):
            note = "" if bank.matching_enabled_ratio >= 1.0 else "  <- GET /m/lookup skips it at random"
            print(f"  {bank.name:<30} matching_enabled_ratio {bank.matching_enabled_ratio:g}{note}")
        for signal, index in sorted((await client.index_status()).items()):
            built = (
                datetime.fromtimestamp(index.built_to, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                if index.built_to and index.built_to > 0
                else "never"
            )
            present = "" if index.present else " (not present)"
            print(f"index      {signal}: {index.size} hashes, built {built}{present}")
    except HmaCallError as exc:
        print(f"error      {exc.kind}: {exc.detail}")
        ok = False
    finally:
        await client.aclose()
    return 0 if ok else 1
