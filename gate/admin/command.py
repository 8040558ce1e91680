"""``upload-gate admin token add NAME --role reviewer|admin`` / ``admin token list`` / ``admin token remove``.

The token is printed once, to stdout, and never stored: the tokens file keeps only its SHA-256.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gate.admin.tokens import Role, TokenFile, TokenFileError
from gate.settings import Settings, SettingsError


def _tokens(args: argparse.Namespace) -> TokenFile | None:
    if args.file:
        return TokenFile(Path(args.file))
    try:
        settings = Settings.from_env(env_file=Path(args.env_file) if args.env_file else None)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return None
    return TokenFile(settings.admin_tokens_file)


def cmd_add(args: argparse.Namespace) -> int:
    tokens = _tokens(args)
    if tokens is None:
        return 2
    try:
        token = tokens.add(args.name, Role(args.role))
    except (TokenFileError, OSError) as exc:
        print(f"upload-gate: {exc}", file=sys.stderr)
        return 1
    print(f"added {args.role} {args.name!r} to {tokens.path}; the token (shown once):", file=sys.stderr)
    print(token)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    tokens = _tokens(args)
    if tokens is None:
        return 2
    try:
        for p in tokens.principals():
            print(f"{p.name}\t{p.role.value}")
    except (TokenFileError, OSError) as exc:
        print(f"upload-gate: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    tokens = _tokens(args)
    if tokens is None:
        return 2
    try:
        removed = tokens.remove(args.name)
    except (TokenFileError, OSError) as exc:
        print(f"upload-gate: {exc}", file=sys.stderr)
        return 1
    if not removed:
        print(f"upload-gate: no token named {args.name!r} in {tokens.path}", file=sys.stderr)
        return 1
    print(f"removed {args.name!r}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="review queue access: reviewer and admin tokens")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True, metavar="SUBCOMMAND")
    token = admin_sub.add_parser("token", help="create, list or remove review tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--file", help="the tokens file (default: GATE_ADMIN_TOKENS or GATE_DATA_DIR/admin-tokens)"
    )

    add = token_sub.add_parser("add", parents=[common], help="create a token and print it once")
    add.add_argument("name", help="who holds it (recorded in the audit log)")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.REVIEWER.value)
    add.set_defaults(func=cmd_add)
    ls = token_sub.add_parser("list", parents=[common], help="names and roles (never tokens)")
    ls.set_defaults(func=cmd_list)
    rm = token_sub.add_parser("remove", parents=[common], help="revoke a token by name")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)
