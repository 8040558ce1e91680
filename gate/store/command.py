"""``upload-gate migrate | decisions | stats``: the decision log from the command line.

Each command talks to ``DATABASE_URL`` or, when it is unset, to the embedded Postgres of GATE_DATA_DIR
(joining it if the gate is running, starting it for the duration of the command if not).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from gate.cli import positive_arg, when_arg
from gate.settings import Settings, SettingsError
from gate.store.database import Database
from gate.store.migrate import MigrationError, migrate, schema_ready
from gate.store.pool import Pool, StoreUnavailable
from gate.store.query import Filters, fetch_decisions, fetch_stats, parse_when
from gate.store.render import decisions_table, stats_text
from gate.types import DecisionSource, Verdict

if TYPE_CHECKING:
    from gate.store.pool import Connection


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate",
        help="apply the decision-log schema migrations",
        description="Apply the database migrations to DATABASE_URL (or the embedded Postgres). The gate "
        "does this itself at start-up; run it by hand before starting several replicas at once, or to "
        "check a database.",
        epilog="examples:\n  upload-gate migrate\n  DATABASE_URL=postgresql://gate@db/gate upload-gate migrate",
    )
    p.set_defaults(func=run_migrate)

    p = sub.add_parser(
        "decisions",
        help="list decisions from the decision log (newest first)",
        description="List logged decisions, newest first, filtered by time, verdict, uploader, blob or "
        "rule. Rows name a DID only when the PDS accepted the caller.",
        epilog="""\
examples:
  upload-gate decisions --since 24h --verdict reject
  upload-gate decisions --did did:plc:abc123 --limit 200
  upload-gate decisions --sha256 9f86d081884c7d65... --json     every column of the matching rows
  upload-gate decisions --shadow --since 7d              what shadow rules would have done""",
    )
    p.add_argument("--since", type=when_arg, help="e.g. 30m, 24h, 7d or 2026-01-31T12:00")
    p.add_argument("--until", type=when_arg, help="same forms as --since")
    p.add_argument("--verdict", choices=tuple(Verdict))
    p.add_argument("--source", choices=tuple(DecisionSource), help="the path that judged the bytes")
    p.add_argument("--did", help="uploader DID (verified: the PDS accepted the caller)")
    p.add_argument("--cid", help="blob CID")
    p.add_argument("--sha256", help="SHA-256 of the decoded upload (hex)")
    p.add_argument("--rule", help="the rule that decided")
    p.add_argument("--shadow", action="store_true", help="only decisions where a shadow rule fired")
    p.add_argument("--limit", type=positive_arg, default=50, help="most rows to print (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line, every column")
    p.set_defaults(func=run_decisions)

    p = sub.add_parser(
        "stats",
        help="verdict counts and block rates per rule and bank over a window",
        description="Verdict counts, the block rate, uploads forwarded without a full scan, and block rates "
        "per rule and bank over a window (the last 24 hours by default). The first week in shadow mode: "
        "read this before making a rule active.",
        epilog="""\
examples:
  upload-gate stats
  upload-gate stats --since 7d
  upload-gate stats --since 2026-01-01T00:00 --until 2026-02-01T00:00 --json""",
    )
    p.add_argument("--since", type=when_arg, default="24h", help="window start (default 24h ago)")
    p.add_argument("--until", type=when_arg, help="window end (default now)")
    p.add_argument(
        "--include-unverified",
        action="store_true",
        help="also count judged uploads whose caller the PDS never accepted (left out by default)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=run_stats)


def run_migrate(args: argparse.Namespace) -> int:
    async def work(conn: Connection) -> int:
        applied = await migrate(conn)
        for mig in applied:
            print(f"applied {mig.version:03d}_{mig.name}")
        if not applied:
            print("schema up to date")
        return 0

    return _with_database(args, work, need_schema=False)


def run_decisions(args: argparse.Namespace) -> int:
    filters = Filters(
        since=args.since,
        until=args.until,
        verdict=args.verdict,
        source=args.source,
        did=args.did,
        cid=args.cid,
        sha256=args.sha256,
        rule=args.rule,
        shadow=args.shadow,
        limit=args.limit,
    )

    async def work(conn: Connection) -> int:
        rows = await fetch_decisions(conn, filters)
        if args.json:
            for row in rows:
                sys.stdout.write(json.dumps(row, sort_keys=True) + "\n")
        else:
            sys.stdout.write(decisions_table(rows))
        return 0

    return _with_database(args, work)


def run_stats(args: argparse.Namespace) -> int:
    until = args.until or datetime.now(UTC)
    since = args.since if isinstance(args.since, datetime) else parse_when(args.since)

    async def work(conn: Connection) -> int:
        stats = await fetch_stats(conn, since, until, include_unverified=args.include_unverified)
        sys.stdout.write(json.dumps(stats, sort_keys=True) + "\n" if args.json else stats_text(stats))
        return 0

    return _with_database(args, work)


def _with_database(
    args: argparse.Namespace, work: Callable[[Any], Awaitable[int]], need_schema: bool = True
) -> int:
    try:
        settings = Settings.from_env(env_file=Path(args.env_file) if args.env_file else None)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2

    async def main() -> int:
        db = Database(settings)
        try:
            await db.start()
            conn = await db.connect()
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"upload-gate: cannot reach {db.description}: {exc}", file=sys.stderr)
            await db.stop()
            return 1
        try:
            if need_schema and not await schema_ready(conn):
                print(
                    f"upload-gate: {db.description} has no current decision-log schema; "
                    "run `upload-gate migrate` (the gate also applies it at start-up)",
                    file=sys.stderr,
                )
                return 1
            return await work(conn)
        except MigrationError as exc:
            print(f"upload-gate: {exc}", file=sys.stderr)
            return 1
        finally:
            await conn.close()
            await db.stop()

    return asyncio.run(main())


def with_pool(
    args: argparse.Namespace, work: Callable[[Pool], Awaitable[int]], errors: tuple[type[Exception], ...] = ()
) -> int:
    """Run ``work(pool)`` against the gate's Postgres (DATABASE_URL, or the embedded one of GATE_DATA_DIR),
    schema migrated first. ``errors`` (and Postgres failing) are printed, exit 1."""
    try:
        settings = Settings.from_env(env_file=Path(args.env_file) if args.env_file else None)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2

    async def main() -> int:
        db = Database(settings)
        try:
            await db.start()
            await db.pool.get()
            return await work(db.pool)
        except (OSError, StoreUnavailable) as exc:
            print(f"upload-gate: cannot use {db.description}: {exc}", file=sys.stderr)
            return 1
        except errors as exc:
            print(f"upload-gate: {exc}", file=sys.stderr)
            return 1
        finally:
            await db.stop()

    return asyncio.run(main())
