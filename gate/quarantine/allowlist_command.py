"""``upload-gate allowlist list|remove``: the reviewed false positives releases add (table ``allowlist``).

    allowlist list [--json]            every released hash: bank, item, who, when
    allowlist remove SHA256 [--actor]  stop allowlisting it (audited); its next upload is judged again

Uses ``DATABASE_URL`` or the embedded Postgres of GATE_DATA_DIR, like the other store commands. Running
gates pick a removal up within GATE_RELOAD_INTERVAL.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from gate.quarantine.allowlist import Allowlist, NoAllowlistBank
from gate.quarantine.evidence_command import operator_name
from gate.store.command import with_pool
from gate.store.pool import Pool, StoreUnavailable

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "allowlist",
        help="reviewed false positives (released hashes): list, remove",
        description="Hashes a reviewer released as false positives: every replica forwards them again. "
        "Running gates pick a removal up within GATE_RELOAD_INTERVAL.",
        epilog="""\
examples:
  upload-gate allowlist list
  upload-gate allowlist remove 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08""",
    )
    ps = p.add_subparsers(dest="allowlist_command", required=True, metavar="ACTION")
    ls = ps.add_parser(
        "list",
        help="every released hash: bank, item, who, when",
        description="Every released hash: SHA-256, bank, the item it was released from, who and when.",
        epilog="examples:\n  upload-gate allowlist list\n  upload-gate allowlist list --json",
    )
    ls.add_argument("--json", action="store_true", help="JSON lines")
    ls.set_defaults(func=run_list)
    rm = ps.add_parser(
        "remove",
        help="stop allowlisting a hash (audited)",
        description="Stop allowlisting SHA256 (audited): its next upload is judged again.",
        epilog="""\
examples:
  upload-gate allowlist remove 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08""",
    )
    rm.add_argument("sha256", help="the SHA-256 (64 hex digits), as `allowlist list` prints it")
    rm.add_argument("--actor", default=None, help="who removes it, for the audit trail (default: OS user)")
    rm.set_defaults(func=run_remove)


def run_list(args: argparse.Namespace) -> int:
    async def work(db: Pool) -> int:
        allow = Allowlist(db)
        rows = await allow.rows()
        for row in rows:
            if args.json:
                sys.stdout.write(json.dumps(row.to_json(), sort_keys=True) + "\n")
            else:
                when = row.added_at.isoformat(timespec="seconds")
                print(f"{row.sha256}  {row.bank}  {row.decision_id or '-'}  {row.added_by}  {when}")
        if not rows and not args.json:
            print("no released hashes on the allowlist")
        return 0

    return with_pool(args, work, (NoAllowlistBank, StoreUnavailable))


def run_remove(args: argparse.Namespace) -> int:
    if not _SHA256.match(args.sha256):
        print("upload-gate: expected a SHA-256 (64 hex digits)", file=sys.stderr)
        return 2

    async def work(db: Pool) -> int:
        allow = Allowlist(db)
        removed = await allow.remove(args.sha256, operator_name(args.actor))
        if removed is None:
            print(f"upload-gate: {args.sha256.lower()} is not on the allowlist", file=sys.stderr)
            return 1
        print(f"removed {removed.sha256} (bank {removed.bank}, released {removed.decision_id or '-'})")
        return 0

    return with_pool(args, work, (NoAllowlistBank, StoreUnavailable))
