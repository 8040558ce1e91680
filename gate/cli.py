"""``upload-gate`` command line: each subcommand lives in the module that owns its subject.

A module contributes a command by defining ``register(subparsers)`` that adds its parser and sets
``func`` (returning an exit code). The list below is the one place commands are wired in.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# module: subcommands it registers
COMMAND_MODULES = (
    "gate.serve",  # serve
    "gate.policy.check",  # check-policy
    "gate.hashing.command",  # hash
    "gate.matching.hma_command",  # hma check
    "gate.store.command",  # migrate, decisions, stats
    "gate.admin.command",  # admin token add/list/remove
    "gate.quarantine.keys_command",  # keys init/rotate/retire/list
    "gate.quarantine.evidence_command",  # evidence list/purge/export/hold/lift-hold
    "gate.quarantine.allowlist_command",  # allowlist list/remove
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="upload-gate", description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", help="a .env-style file of GATE_* settings (environment wins)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
        register = importlib.import_module(name).register
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
