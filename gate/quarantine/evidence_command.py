"""``upload-gate evidence …``: the evidence of blocked uploads from the shell.

    evidence list           items (metadata only), newest first
    evidence purge          delete expired evidence now (the gate also does this periodically)
    evidence export ID --out DIR   decrypted bytes + JSON manifest, for a report; audited
    evidence hold ID --reason R    place a legal hold: never purged or released until lifted; audited
    evidence lift-hold ID          lift it (the item's retention deadline applies again); audited

Commands that touch items use ``DATABASE_URL`` or the embedded Postgres of GATE_DATA_DIR, like the
other store commands. Plaintext is written only by ``export``, only into the directory the operator
names, with mode 0600. ``upload-gate keys …`` (``gate.quarantine.keys_command``) shares the helpers here.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

from gate.quarantine.keys import EvidenceUnreadable, Keyring, KeyringError
from gate.settings import Settings, SettingsError
from gate.store.database import Database
from gate.store.evidence import Evidence
from gate.store.item import EvidenceState
from gate.store.pool import StoreUnavailable
from gate.store.purge import purge
from gate.store.transitions import EvidenceNotFound, InvalidTransition

# A string: argparse._SubParsersAction is not subscriptable at run time.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


EXAMPLES = """\
examples:
  upload-gate evidence list --state held
  upload-gate evidence export 0190f3c2-7d1e-7a4b-9c55-2f1e8d3a6b70 --out /secure/reports/2026-001
  upload-gate evidence hold 0190f3c2-7d1e-7a4b-9c55-2f1e8d3a6b70 --reason "preservation request"
  upload-gate evidence purge"""
ITEM_ID = "the item's decision id, as `evidence list` prints it"


def register(sub: Subparsers) -> None:
    ev = sub.add_parser(
        "evidence",
        help="encrypted evidence of quarantined uploads: list, purge, export",
        description="The sealed bytes of blocked uploads, kept for review and reporting. Every access is "
        "audited; plaintext is written only by `export`, only where the operator says.",
        epilog=EXAMPLES,
    )
    es = ev.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    p = es.add_parser(
        "list",
        help="evidence items (metadata only), newest first",
        description="Evidence items, newest first: decision id, time, state, rule, CID, whether the bytes "
        "are still kept, the retention deadline and any legal hold. Never the bytes.",
        epilog="examples:\n  upload-gate evidence list\n  upload-gate evidence list --state held --limit 200",
    )
    p.add_argument(
        "--state",
        choices=[s.value for s in EvidenceState],
        help="held (waiting for review), confirmed, reported or released",
    )
    p.add_argument("--limit", type=int, default=50, help="most items to print (default 50)")
    p.set_defaults(func=run_list)
    p = es.add_parser(
        "purge",
        help="delete expired evidence now (decision rows stay)",
        description="Delete the bytes of every item past its retention deadline now (the gate also does "
        "this every GATE_EVIDENCE_PURGE_INTERVAL). Items under legal hold are kept.",
        epilog="examples:\n  upload-gate evidence purge",
    )
    p.set_defaults(func=run_purge)
    p = es.add_parser(
        "export",
        help="write the decrypted bytes and a JSON manifest to a directory",
        description="Decrypt one item and write its bytes and a JSON manifest (hashes, uploader, audit "
        "trail) into --out, mode 0600, for a report. The export is audited.",
        epilog="examples:\n  upload-gate evidence export 0190f3c2-7d1e-7a4b-9c55-2f1e8d3a6b70"
        " --out /secure/reports/2026-001",
    )
    p.add_argument("decision_id", help=ITEM_ID)
    p.add_argument("--out", required=True, type=Path, help="directory to write into (created 0700)")
    p.add_argument("--actor", default=None, help="who exports, for the audit trail (default: OS user)")
    p.set_defaults(func=run_export)
    p = es.add_parser(
        "hold",
        help="place a legal hold: the evidence is never purged or released until lifted",
        description="Place a legal hold on one item: it is never purged or released until the hold is "
        "lifted. Audited, with the matter given in --reason.",
        epilog="examples:\n  upload-gate evidence hold 0190f3c2-7d1e-7a4b-9c55-2f1e8d3a6b70"
        ' --reason "preservation request 2026-17"',
    )
    p.add_argument("decision_id", help=ITEM_ID)
    p.add_argument("--reason", required=True, help="the matter it is held for (e.g. a preservation request)")
    p.add_argument("--actor", default=None, help="who places it, for the audit trail (default: OS user)")
    p.set_defaults(func=run_hold)
    p = es.add_parser(
        "lift-hold",
        help="lift a legal hold (the item's retention deadline applies again)",
        description="Lift the legal hold on one item: its retention deadline applies again (a passed "
        "one means the next purge deletes it). Audited.",
        epilog="examples:\n  upload-gate evidence lift-hold 0190f3c2-7d1e-7a4b-9c55-2f1e8d3a6b70"
        ' --reason "matter closed"',
    )
    p.add_argument("decision_id", help=ITEM_ID)
    p.add_argument("--reason", default=None, help="why it is lifted, for the audit trail")
    p.add_argument("--actor", default=None, help="who lifts it, for the audit trail (default: OS user)")
    p.set_defaults(func=run_lift_hold)


def settings_of(args: argparse.Namespace) -> Settings:
    return Settings.from_env(env_file=Path(args.env_file) if getattr(args, "env_file", None) else None)


def fail(message: str) -> int:
    print(f"upload-gate: {message}", file=sys.stderr)
    return 2


def required_keyring(settings: Settings) -> Keyring:
    keyring = Keyring.configured(settings.evidence_keys_file, settings.evidence_key)
    if keyring is None:
        raise KeyringError("no evidence key is configured; create one with `upload-gate keys init PATH`")
    return keyring


def with_evidence(args: argparse.Namespace, work: Callable[[Evidence], Awaitable[int]]) -> int:
    try:
        settings = settings_of(args)
        keyring = Keyring.configured(settings.evidence_keys_file, settings.evidence_key)
    except (SettingsError, KeyringError) as exc:
        return fail(str(exc))

    async def run() -> int:
        database = Database(settings)
        await database.start()
        try:
            return await work(Evidence.on(database.pool, keyring))
        finally:
            await database.stop()

    try:
        return asyncio.run(run())
    except (StoreUnavailable, EvidenceUnreadable, KeyringError, OSError) as exc:
        return fail(str(exc))
    except EvidenceNotFound as exc:
        return fail(f"no evidence for decision {exc}")
    except InvalidTransition as exc:
        return fail(str(exc))


def operator_name(given: str | None) -> str:
    if given:
        return given
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli:unknown"


def run_list(args: argparse.Namespace) -> int:
    async def work(store: Evidence) -> int:
        state = EvidenceState(args.state) if args.state else None
        items = await store.items.list_items(state, limit=args.limit)
        await store.audit.record(
            operator_name(None), "list", None, {"state": args.state, "count": len(items)}
        )
        if not items:
            print(f"no {args.state + ' ' if args.state else ''}evidence items")
        for item in items:
            expires = item.expires_at.isoformat(timespec="seconds") if item.expires_at else "-"
            print(
                f"{item.decision_id}  {item.created_at.isoformat(timespec='seconds')}  {item.state.value:9}"
                f"  {item.rule or '-'}  {item.cid}  bytes={'yes' if item.has_bytes else 'no'}  expires={expires}"
                + ("  legal-hold" if item.legal_hold else "")
            )
        return 0

    return with_evidence(args, work)


def run_purge(args: argparse.Namespace) -> int:
    async def work(store: Evidence) -> int:
        print("purging expired evidence...", file=sys.stderr, flush=True)
        purged = await purge(store.db, actor=operator_name(None))
        for p in purged:
            print(
                f"purged {p.decision_id} ({p.state}, sha256 {p.sha256}, expired {p.expired_at.isoformat()})"
            )
        print(f"{len(purged)} expired item(s) purged")
        return 0

    return with_evidence(args, work)


def run_hold(args: argparse.Namespace) -> int:
    async def work(store: Evidence) -> int:
        item = await store.items.set_legal_hold(
            args.decision_id, operator_name(args.actor), True, args.reason
        )
        print(f"legal hold placed on {item.decision_id} by {item.legal_hold_by}: {item.legal_hold_reason}")
        return 0

    return with_evidence(args, work)


def run_lift_hold(args: argparse.Namespace) -> int:
    async def work(store: Evidence) -> int:
        item = await store.items.set_legal_hold(
            args.decision_id, operator_name(args.actor), False, args.reason
        )
        print(f"legal hold lifted from {item.decision_id}")
        if item.has_bytes and item.expires_at is not None and item.expires_at <= datetime.now(UTC):
            print(
                f"its retention deadline ({item.expires_at.isoformat()}) has passed: the next purge deletes it"
            )
        return 0

    return with_evidence(args, work)


def run_export(args: argparse.Namespace) -> int:
    async def work(store: Evidence) -> int:
        item = await store.items.get(args.decision_id)
        if item is None:
            raise EvidenceNotFound(args.decision_id)
        data = await store.vault.decrypt(item.decision_id, operator_name(args.actor), "export")
        manifest = await export_manifest(store, item.decision_id, data, args.out)
        _write_private(args.out / f"{item.decision_id}.bin", data)
        _write_private(args.out / f"{item.decision_id}.json", json.dumps(manifest, indent=2).encode() + b"\n")
        print(f"exported {item.decision_id} to {args.out} ({len(data)} bytes, sha256 {manifest['sha256']})")
        return 0

    return with_evidence(args, work)


async def export_manifest(store: Evidence, decision_id: str, data: bytes, out: Path) -> dict[str, Any]:
    item = await store.items.get(decision_id)
    assert item is not None
    trail = await store.audit.trail(decision_id)
    actual = hashlib.sha256(data).hexdigest()
    if actual != item.sha256:
        raise EvidenceUnreadable(f"decrypted bytes hash {actual}, expected {item.sha256}; not exported")
    viewers = sorted({e.actor for e in trail if e.action in ("reveal", "viewed", "export")})
    return {
        "format": "upload-gate-evidence-export/1",
        "exported_at": datetime.now(UTC).isoformat(),
        "file": f"{decision_id}.bin",
        "sha256": actual,
        "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 (an identifier reporters ask for, not security)
        "sha1": hashlib.sha1(data).hexdigest(),  # noqa: S324
        "cid": item.cid,
        "size": len(data),
        "uploader": {
            "did_claimed": item.did,
            "did_method": item.did_method,
            "did_verified": item.verified_did,
            "verified_how": item.verified_how,
            "verified_at": item.verified_at.isoformat() if item.verified_at else None,
            "client_ip": item.client_ip,
        },
        "human_viewed": item.human_viewed,
        "viewed_by": viewers,
        "item": item.to_json(),
        "audit": [e.to_json() for e in trail],
    }


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
