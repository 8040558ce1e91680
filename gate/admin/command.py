"""``upload-gate admin token add NAME --role reviewer|admin|service`` / ``admin token list`` / ``admin token remove``.

Tokens live in Postgres (``DATABASE_URL``, or the embedded one of GATE_DATA_DIR — run it where the gate
runs: ``docker compose exec gate …``, ``kubectl exec deploy/upload-gate -- …``), so a token works on
every replica at once and survives restarts. The token is printed once, to stdout, and never stored:
the table keeps only its SHA-256. Adding and removing are audited.
"""

from __future__ import annotations

import argparse
import sys

from gate.admin.tokens import Role, TokenError, TokenStore
from gate.quarantine.evidence_command import operator_name
from gate.store.command import with_pool
from gate.store.pool import Pool, StoreUnavailable

ERRORS = (TokenError, StoreUnavailable)


def cmd_add(args: argparse.Namespace) -> int:
    async def work(db: Pool) -> int:
        tokens = TokenStore(db)
        token = await tokens.add(args.name, Role(args.role), operator_name(None))
        print(f"added {args.role} {args.name!r}; the token (shown once):", file=sys.stderr)
        print(token)
        return 0

    return with_pool(args, work, ERRORS)


def cmd_list(args: argparse.Namespace) -> int:
    async def work(db: Pool) -> int:
        principals = await TokenStore(db).principals()
        for p in principals:
            print(f"{p.name}\t{p.role.value}")
        if not principals:
            print("no tokens; create one with `upload-gate admin token add NAME --role reviewer`")
        return 0

    return with_pool(args, work, ERRORS)


def cmd_remove(args: argparse.Namespace) -> int:
    async def work(db: Pool) -> int:
        tokens = TokenStore(db)
        removed = await tokens.remove(args.name, operator_name(None))
        if not removed:
            print(f"upload-gate: no token named {args.name!r}", file=sys.stderr)
            return 1
        print(f"removed {args.name!r}: it no longer opens the review site", file=sys.stderr)
        return 0

    return with_pool(args, work, ERRORS)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    examples = """\
examples:
  upload-gate admin token add alice --role reviewer     prints the token once: hand it to alice
  upload-gate admin token add ops --role admin          admins also take down accounts, hold, audit
  upload-gate admin token add modtool --role service    the hash/match/scan API for another service
  upload-gate admin token list
  upload-gate admin token remove alice"""
    about = (
        "Who may open the review site and the hash/match/scan API: named tokens with a role, kept in "
        "Postgres as hashes (so every replica knows them), audited when added or removed."
    )
    admin = sub.add_parser(
        "admin", help="access tokens: reviewer, admin and service", description=about, epilog=examples
    )
    admin_sub = admin.add_subparsers(dest="admin_command", required=True, metavar="SUBCOMMAND")
    token = admin_sub.add_parser(
        "token",
        help="create, list or remove review tokens (kept in Postgres)",
        description=about,
        epilog=examples,
    )
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    add = token_sub.add_parser(
        "add",
        help="create a token and print it once",
        description="Create a token for NAME and print it once, on stdout (only its hash is kept).",
        epilog="examples:\n  upload-gate admin token add alice --role reviewer",
    )
    add.add_argument("name", help="who holds it (recorded in the audit log)")
    add.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.REVIEWER.value,
        help="reviewer (default): the queue, previews, release, confirm, reported; admin: also account "
        "takedowns, legal holds, the audit log and the API; service: the hash/match/scan API (/api/v1) "
        "only, for another service",
    )
    add.set_defaults(func=cmd_add)
    ls = token_sub.add_parser(
        "list",
        help="names and roles (never tokens)",
        description="Token names and roles, one a line; the tokens themselves are never shown again.",
        epilog="examples:\n  upload-gate admin token list",
    )
    ls.set_defaults(func=cmd_list)
    rm = token_sub.add_parser(
        "remove",
        help="revoke a token by name",
        description="Revoke NAME's token: it no longer opens the review site, on any replica.",
        epilog="examples:\n  upload-gate admin token remove alice",
    )
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)
