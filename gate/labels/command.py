"""``upload-gate labeler …``: the labeler from the shell.

    labeler init [PATH] --endpoint URL   create the signing key (mode 0600) and print what to publish:
                                         the DID document's #atproto_label key and #atproto_labeler
                                         service, and the app.bsky.labeler.service record
    labeler show --endpoint URL          print the same for the configured key
    labeler label URI VAL…               apply labels by hand (an operator's, no decision behind them)
    labeler negate URI VAL…              withdraw labels (negation labels)

The key never enters the database (``gate.labels.key``); labels do (``DATABASE_URL`` or the embedded
Postgres, like the other store commands), unsigned, and ``serve`` signs them as it serves them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from yarl import URL

from gate.labels.key import LabelerKey, LabelerKeyError
from gate.labels.label import VAL_MAX
from gate.labels.store import LabelStore
from gate.policy.load import PolicyError, load_policy
from gate.quarantine.evidence_command import Subparsers, fail, settings_of
from gate.settings import Settings, SettingsError
from gate.store.database import Database
from gate.store.pool import StoreUnavailable

# app.bsky.labeler.defs#labelValueDefinition: identifier "^[a-z-]+$", at most 100 characters.
LABEL_VALUE = re.compile(r"^[a-z-]{1,100}$")


def register(sub: Subparsers) -> None:
    lab = sub.add_parser(
        "labeler",
        help="the labeler: key, what to publish, labels by hand",
        description="The gate as an atproto labeler: its signing key (never in the database), what the "
        "labeler account publishes, and labels applied or withdrawn by hand. serve signs and serves the "
        "labels (queryLabels, subscribeLabels) once GATE_LABELER_DID and the key are set.",
        epilog="""\
examples:
  upload-gate labeler init /etc/upload-gate/labeler-key.json --endpoint https://gate.example.com
  upload-gate labeler label at://did:plc:abc/app.bsky.feed.post/3k hash-match""",
    )
    ls = lab.add_subparsers(dest="labeler_command", required=True, metavar="ACTION")
    p = ls.add_parser(
        "init",
        help="create the labeler's signing key and print what to publish",
        description="Create the labeler's secp256k1 signing key (mode 0600) and print the DID-document "
        "entries (#atproto_label key, #atproto_labeler service) and the app.bsky.labeler.service record "
        "the labeler account publishes. An existing key file is never replaced.",
        epilog="""\
examples:
  upload-gate labeler init /etc/upload-gate/labeler-key.json --endpoint https://gate.example.com
  upload-gate labeler init --if-missing --endpoint https://gate.example.com   (path from GATE_LABELER_KEY_FILE)""",
    )
    p.add_argument("path", nargs="?", help="where to create it (default: GATE_LABELER_KEY_FILE)")
    _publishing(p)
    p.add_argument("--if-missing", action="store_true", help="keep a usable key that is already there")
    p.set_defaults(func=run_init)
    p = ls.add_parser(
        "show",
        help="print the DID document entries and service record for the key",
        description="Print again what the labeler account publishes, for the key configured in "
        "GATE_LABELER_KEY_FILE or GATE_LABELER_KEY (after a move, or to check a DID document).",
        epilog="examples:\n  upload-gate labeler show --endpoint https://gate.example.com --value hash-match",
    )
    _publishing(p)
    p.set_defaults(func=run_show)
    for name, func, what in (("label", run_label, "Apply"), ("negate", run_negate, "Withdraw")):
        p = ls.add_parser(
            name,
            help=f"{what.lower()} labels by hand",
            description=f"{what} labels on a record (at:// URI) or an account (DID) by hand, in the "
            "labeler's name (GATE_LABELER_DID); serve signs them and sends them to subscribers.",
            epilog=f"examples:\n  upload-gate labeler {name} at://did:plc:abc/app.bsky.feed.post/3k hash-match",
        )
        p.add_argument("uri", help="an at:// record URI or an account DID")
        p.add_argument("values", nargs="+", metavar="VAL")
        p.set_defaults(func=func)


def _publishing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", required=True, help="the labeler's public https URL (the gate's listener)")
    p.add_argument("--did", help="the labeler account's DID (default: GATE_LABELER_DID)")
    p.add_argument(
        "--value",
        action="append",
        default=[],
        dest="values",
        help="a label value it publishes (repeat; default: the values of the policy's [[firehose.labels]])",
    )


def service_entries(did: str, key: LabelerKey, endpoint: str) -> dict[str, Any]:
    """What the labeler account publishes: its DID document's label key and labeler service (and the
    same as did:plc operation fields)."""
    return {
        "verificationMethod": {
            "id": f"{did}#atproto_label",
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": key.multibase,
        },
        "service": {"id": "#atproto_labeler", "type": "AtprotoLabeler", "serviceEndpoint": endpoint},
        "plc_operation": {
            "verificationMethods": {"atproto_label": key.did_key},
            "services": {"atproto_labeler": {"type": "AtprotoLabeler", "endpoint": endpoint}},
        },
    }


def service_record(values: Sequence[str]) -> dict[str, Any]:
    """The ``app.bsky.labeler.service`` record (rkey ``self``): the values and how clients treat them —
    hash-matched media is hidden by default, with a warning."""
    definitions = [
        {
            "identifier": v,
            "severity": "alert",
            "blurs": "media",
            "defaultSetting": "hide",
            "adultOnly": False,
            "locales": [{"lang": "en", "name": v, "description": "Media matched a known hash list."}],
        }
        for v in values
    ]
    return {
        "$type": "app.bsky.labeler.service",
        "policies": {"labelValues": list(values), "labelValueDefinitions": definitions},
        "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def _print_publishing(args: argparse.Namespace, settings: Settings, key: LabelerKey) -> int:
    endpoint = URL(args.endpoint)
    if endpoint.scheme not in ("http", "https") or not endpoint.host:
        return fail(f"--endpoint {args.endpoint!r}: expected the labeler's public https URL")
    if not args.values:  # the values the policy's [[firehose.labels]] publish
        try:
            policy = load_policy(settings.policy_path)
            args.values = list(dict.fromkeys(v for r in policy.firehose.labels for v in r.values))
        except (PolicyError, OSError) as exc:
            print(f"(label values not read from the policy: {exc}; give them with --value)")
    bad = [v for v in args.values if not LABEL_VALUE.match(v) or len(v) > VAL_MAX]
    if bad:
        return fail(f"label values are lower-case letters and hyphens: {', '.join(bad)}")
    did = args.did or settings.labeler_did or "<the labeler account's DID>"
    print(f"labeler key: {key.did_key}")
    print("\nThe labeler account's DID document (did:plc: the operation fields below):")
    print(json.dumps(service_entries(did, key, str(endpoint).rstrip("/")), indent=2))
    print("\nThe app.bsky.labeler.service record (collection app.bsky.labeler.service, rkey self):")
    print(json.dumps(service_record(args.values), indent=2))
    return 0


def run_init(args: argparse.Namespace) -> int:
    try:
        settings = settings_of(args)
    except SettingsError as exc:
        return fail(str(exc))
    path = Path(args.path) if args.path else settings.labeler_key_file
    if path is None:
        return fail("say where: `upload-gate labeler init PATH` (or set GATE_LABELER_KEY_FILE)")
    try:
        if args.if_missing and (path.exists() or path.is_symlink()):
            key = LabelerKey.load(path)  # never replaced: labels it signed would stop verifying
            print(f"{path} exists; left as it is")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = LabelerKey.generate().save(path)
            print(f"created {path} (mode 0600); set GATE_LABELER_KEY_FILE={path.resolve()}")
            print("and keep a copy somewhere safe, apart from database backups.\n")
    except (LabelerKeyError, OSError) as exc:
        return fail(str(exc))
    return _print_publishing(args, settings, key)


def run_show(args: argparse.Namespace) -> int:
    try:
        settings = settings_of(args)
        key = LabelerKey.configured(settings.labeler_key_file, settings.labeler_key)
    except (SettingsError, LabelerKeyError) as exc:
        return fail(str(exc))
    if key is None:
        return fail(
            "no labeler key is configured (GATE_LABELER_KEY_FILE); create one: upload-gate labeler init"
        )
    return _print_publishing(args, settings, key)


def _by_hand(args: argparse.Namespace, negate: bool) -> int:
    try:
        settings = settings_of(args)
    except SettingsError as exc:
        return fail(str(exc))
    if settings.labeler_did is None:
        return fail("GATE_LABELER_DID is not set: labels need their labeler's DID")
    if not (args.uri.startswith(("at://", "did:"))) or any(c.isspace() for c in args.uri):
        return fail(f"{args.uri!r}: expected an at:// URI or a DID")
    bad = [v for v in args.values if not 0 < len(v) <= VAL_MAX or not v.isprintable()]
    if bad:
        return fail(f"label values are 1 to {VAL_MAX} printable characters: {bad!r}")
    src = settings.labeler_did

    async def run() -> list[int]:
        database = Database(settings)
        await database.start()
        try:
            store = LabelStore(database.pool)
            if negate:
                return await store.negate(src, args.uri, args.values)
            return await store.apply(src, args.uri, args.values, None)
        finally:
            await database.stop()

    try:
        made = asyncio.run(run())
    except (StoreUnavailable, OSError) as exc:
        return fail(str(exc))
    what = "negation labels" if negate else "labels"
    print(
        f"{len(made)} {what} written"
        + (f" (seq {', '.join(map(str, made))})" if made else " (nothing to change)")
    )
    return 0


def run_label(args: argparse.Namespace) -> int:
    return _by_hand(args, negate=False)


def run_negate(args: argparse.Namespace) -> int:
    return _by_hand(args, negate=True)
