"""``upload-gate`` command line: each subcommand lives in the module that owns its subject.

A module contributes a command by defining ``register(subparsers)`` that adds its parser (with a
``description`` and an ``epilog`` of examples, both written for operators) and sets ``func`` (returning
an exit code). The list below is the one place commands are wired in; ``build_parser`` then gives every
parser the same help layout and ``--env-file``, so it may come before or after the command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from gate import package_version
from gate.store.query import parse_when

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
    "gate.labels.command",  # labeler init/show/label/negate
    "gate.firehose.command",  # watch
    "gate.scan.command",  # scan
)

DESCRIPTION = """\
upload-gate sits in front of an AT Protocol PDS and judges every com.atproto.repo.uploadBlob: it hashes
the upload (PDQ, MD5, SHA-1, SHA-256, CID), matches it against hash banks (local files and HMA), and
forwards, quarantines or rejects it as the policy file says. Every decision is logged to Postgres.

Settings are GATE_* environment variables (config/gate.env.example describes each), or a .env-style
file given with --env-file, before or after the command; the environment wins over the file. Commands
that read the decision log or the evidence use DATABASE_URL, or the embedded Postgres of GATE_DATA_DIR:
run them where the gate runs (docker compose exec gate ..., kubectl exec deploy/upload-gate -- ...)."""

EPILOG = """\
getting started:
  upload-gate check-policy /etc/upload-gate/policy.toml        check the policy before using it
  upload-gate keys init /etc/upload-gate/evidence-keys.json    create the evidence keyring
  upload-gate --env-file /etc/upload-gate/gate.env serve       run the gate
  upload-gate stats --since 24h                                what it decided today
  upload-gate admin token add alice --role reviewer            let a reviewer in

Each command's --help has its options and examples."""

ENV_FILE_HELP = "a .env-style file of GATE_* settings (the environment wins over it)"


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions wrap to the terminal paragraph by paragraph; a paragraph with indented lines (the
    examples) keeps its layout."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in text.split("\n\n"):
            if any(line.startswith(" ") for line in block.splitlines()):
                blocks.append(textwrap.indent(block, indent))
            else:
                blocks.append(
                    textwrap.fill(
                        " ".join(block.split()), width, initial_indent=indent, subsequent_indent=indent
                    )
                )
        return "\n\n".join(blocks)


def when_arg(raw: str) -> datetime:
    """An option's type: ``30m``, ``2h``, ``7d`` ago or an ISO-8601 time (``gate.store.query.parse_when``)."""
    try:
        return parse_when(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_arg(raw: str) -> int:
    """An option's type: a whole number from 1."""
    if not raw.isdigit() or int(raw) <= 0:
        raise argparse.ArgumentTypeError("expected a positive integer")
    return int(raw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upload-gate", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument("--env-file", metavar="FILE", help=ENV_FILE_HELP)
    parser.add_argument("--version", action="version", version=f"upload-gate {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
        register = importlib.import_module(name).register
        register(sub)
    for each in _parsers(parser):
        each.formatter_class = HelpFormatter
        if each is not parser:
            # Given after the command it overrides one given before; absent, it leaves that one alone.
            each.add_argument("--env-file", metavar="FILE", default=argparse.SUPPRESS, help=ENV_FILE_HELP)
    return parser


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """This parser and every subcommand's, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from _parsers(child)


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
