"""``upload-gate check-policy FILE``: validate a policy without starting anything.

Local bank names are checked against the bank files in ``--banks-dir`` (default: ``GATE_BANKS_DIR``
from the environment or ``--env-file``, else ``config/banks``), and invalid bank rows are listed as
warnings. HMA bank names live in HMA: the running gate checks them on every load and reload.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gate.matching.bank_set import BankError, build_bank_set
from gate.policy.load import PolicyError, load_policy
from gate.settings import SettingsError, read_env_file


def run(args: argparse.Namespace) -> int:
    known: dict[str, frozenset[str]] = {}
    banks_dir = Path(args.banks_dir)
    bank_notes: list[str] = []
    if banks_dir.is_dir():
        try:
            banks = build_bank_set(banks_dir)
        except BankError as exc:
            print(f"banks {banks_dir}: {exc}", file=sys.stderr)
            return 1
        known["local"] = banks.names
        bank_notes = [f"warning: bank row skipped: {p}" for p in banks.problems]
    elif args.banks_dir_given:
        print(f"banks directory {banks_dir} does not exist", file=sys.stderr)
        return 1
    else:
        bank_notes = [f"note: no banks directory at {banks_dir}: local bank names not checked"]
    try:
        policy = load_policy(args.file, known_banks=known)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    for note in bank_notes:
        print(note, file=sys.stderr)
    print(f"OK {policy.version}: {len(policy.rules)} rules", file=sys.stderr if args.json else sys.stdout)
    if args.against_log:
        from gate.policy.backtest_command import run_back_test  # the database only when asked

        return run_back_test(args, policy, banks_dir)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check-policy",
        help="validate a policy file and exit (1 on problems)",
        description="Validate a policy file as the gate would load it, without starting anything: every "
        "problem is printed with its key path, and the exit status is 1. Bank names are checked against "
        "the local banks directory. Run it before a reload: a refused reload keeps the old policy.",
        epilog="""\
examples:
  upload-gate check-policy /etc/upload-gate/policy.toml
  upload-gate check-policy new-policy.toml --banks-dir /etc/upload-gate/banks""",
    )
    parser.add_argument("file", metavar="FILE", help="the policy file, e.g. config/policy.toml")
    parser.add_argument(
        "--banks-dir",
        help="local banks directory to check bank names against (default: $GATE_BANKS_DIR or config/banks)",
    )
    parser.add_argument(
        "--against-log",
        action="store_true",
        help="also replay the decision log's stored hashes through FILE and print what would change",
    )
    parser.add_argument(
        "--since", default="30d", help="with --against-log: the window (30d, 24h, an ISO time)"
    )
    parser.add_argument("--examples", type=int, default=5, help="with --against-log: examples per group")
    parser.add_argument(
        "--json", action="store_true", help="with --against-log: the report as one JSON object"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    args.banks_dir_given = args.banks_dir is not None
    if args.banks_dir is None:
        # The same precedence as the gate's settings: environment, then --env-file, then the default.
        file_values: dict[str, str] = {}
        if getattr(args, "env_file", None):
            try:
                file_values = read_env_file(Path(args.env_file))
            except SettingsError as exc:
                print(exc, file=sys.stderr)
                return 1
        args.banks_dir = os.environ.get("GATE_BANKS_DIR") or file_values.get("GATE_BANKS_DIR", "config/banks")
    return run(args)


if __name__ == "__main__":  # usable before the other commands exist: python -m gate.policy.check FILE
    _root = argparse.ArgumentParser(prog="upload-gate")
    _sub = _root.add_subparsers(dest="command", required=True)
    register(_sub)
    _args = _root.parse_args(["check-policy", *sys.argv[1:]])
    sys.exit(_args.func(_args))
