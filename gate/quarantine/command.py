"""``upload-gate keys …`` and ``upload-gate evidence …``: the keyring and the evidence from the shell.

    keys init [PATH]        create a keyring (mode 0600) with one active key (--if-missing: keep one
                            that is there, for start-up scripts and init containers)
    keys rotate             add a new active key, then re-wrap every item onto it
    keys retire ID          remove a key no item uses any more
    keys list               key ids, which is active, how many items each seals
    evidence list           items (metadata only), newest first
    evidence purge          delete expired evidence now (the gate also does this periodically)
    evidence export ID --out DIR   decrypted bytes + JSON manifest, for a report; audited
    evidence hold ID --reason R    place a legal hold: never purged or released until lifted; audited
    evidence lift-hold ID          lift it (the item's retention deadline applies again); audited

Commands that touch items use ``DATABASE_URL`` or the embedded Postgres of GATE_DATA_DIR, like the
other store commands. Plaintext is written only by ``export``, only into the directory the operator
names, with mode 0600.
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

from gate.quarantine.keys import EvidenceUnreadable, Keyring, KeyringError, new_key
from gate.settings import Settings, SettingsError
from gate.store.database import Database
from gate.store.evidence import Evidence
from gate.store.item import EvidenceState
from gate.store.pool import StoreUnavailable
from gate.store.purge import purge
from gate.store.rewrap import key_usage, rewrap
from gate.store.transitions import EvidenceNotFound, InvalidTransition

# A string: argparse._SubParsersAction is not subscriptable at run time.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(sub: Subparsers) -> None:
    keys = sub.add_parser("keys", help="the evidence keyring: init, rotate, retire, list")
    ks = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = ks.add_parser("init", help="create a keyring file (mode 0600) with one key")
    p.add_argument("path", nargs="?", help="where to create it (default: GATE_EVIDENCE_KEYS_FILE)")
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="succeed without a change when a usable keyring is already there (for start-up scripts)",
    )
    p.set_defaults(func=run_init)
    p = ks.add_parser("rotate", help="add a new active key and re-wrap every item onto it")
    p.set_defaults(func=run_rotate)
    p = ks.add_parser("retire", help="remove a key once no item uses it")
    p.add_argument("key_id")
    p.set_defaults(func=run_retire)
    p = ks.add_parser("list", help="key ids, the active one, and how many items each seals")
    p.set_defaults(func=run_list_keys)

    ev = sub.add_parser("evidence", help="encrypted evidence of quarantined uploads: list, purge, export")
    es = ev.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    p = es.add_parser("list", help="evidence items (metadata only), newest first")
    p.add_argument("--state", choices=[s.value for s in EvidenceState])
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=run_list)
    p = es.add_parser("purge", help="delete expired evidence now (decision rows stay)")
    p.set_defaults(func=run_purge)
    p = es.add_parser("export", help="write the decrypted bytes and a JSON manifest to a directory")
    p.add_argument("decision_id")
    p.add_argument("--out", required=True, type=Path, help="directory to write into (created 0700)")
    p.add_argument("--actor", default=None, help="who exports, for the audit trail (default: OS user)")
    p.set_defaults(func=run_export)
    p = es.add_parser(
        "hold", help="place a legal hold: the evidence is never purged or released until lifted"
    )
    p.add_argument("decision_id")
    p.add_argument("--reason", required=True, help="the matter it is held for (e.g. a preservation request)")
    p.add_argument("--actor", default=None, help="who places it, for the audit trail (default: OS user)")
    p.set_defaults(func=run_hold)
    p = es.add_parser("lift-hold", help="lift a legal hold (the item's retention deadline applies again)")
    p.add_argument("decision_id")
    p.add_argument("--reason", default=None, help="why it is lifted, for the audit trail")
    p.add_argument("--actor", default=None, help="who lifts it, for the audit trail (default: OS user)")
    p.set_defaults(func=run_lift_hold)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(env_file=Path(args.env_file) if getattr(args, "env_file", None) else None)


def _fail(message: str) -> int:
    print(f"upload-gate: {message}", file=sys.stderr)
    return 2


def _keyring(settings: Settings) -> Keyring:
    keyring = Keyring.configured(settings.evidence_keys_file, settings.evidence_key)
    if keyring is None:
        raise KeyringError("no evidence key is configured; create one with `upload-gate keys init PATH`")
    return keyring


def _with_store(args: argparse.Namespace, work: Callable[[Evidence], Awaitable[int]]) -> int:
    try:
        settings = _settings(args)
        keyring = Keyring.configured(settings.evidence_keys_file, settings.evidence_key)
    except (SettingsError, KeyringError) as exc:
        return _fail(str(exc))

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
        return _fail(str(exc))
    except EvidenceNotFound as exc:
        return _fail(f"no evidence for decision {exc}")
    except InvalidTransition as exc:
        return _fail(str(exc))


# ---- keys ----------------------------------------------------------------------------------------


def run_init(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except SettingsError as exc:
        return _fail(str(exc))
    path = Path(args.path) if args.path else settings.evidence_keys_file
    if path is None and args.if_missing and settings.evidence_key:
        print("GATE_EVIDENCE_KEY is set: no keyring file to create")
        return 0
    if path is None:
        return _fail("say where: `upload-gate keys init PATH` (or set GATE_EVIDENCE_KEYS_FILE)")
    if args.if_missing and (path.exists() or path.is_symlink()):
        # Never replaced, only checked: a new key here would leave every sealed item unreadable.
        try:
            existing = Keyring.load(path)
        except KeyringError as exc:
            return _fail(str(exc))
        print(f"{path} exists (active key {existing.active.id}); left as it is")
        return 0
    key = new_key()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Keyring([key], key.id).save(path, create=True)
    except (KeyringError, OSError) as exc:
        return _fail(str(exc))
    print(f"created {path} (mode 0600) with active key {key.id}")
    print(f"set GATE_EVIDENCE_KEYS_FILE={path.resolve()} and keep a copy somewhere safe: without it the")
    print("evidence cannot be read. Never store it with database backups.")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    try:
        keyring = _keyring(_settings(args))
        if keyring.path is None:
            raise KeyringError(
                "rotation needs a keyring file (GATE_EVIDENCE_KEYS_FILE), not GATE_EVIDENCE_KEY"
            )
        key = new_key()
        keyring.add_active(key)
        keyring.save()  # the new key is on disk before any item depends on it
    except (SettingsError, KeyringError, OSError) as exc:
        return _fail(str(exc))
    print(f"new active key {key.id} written to {keyring.path}")

    async def work(store: Evidence) -> int:
        moved = await rewrap(store.db, keyring)
        await store.audit.record(
            operator_name(None), "keys_rotate", None, {"active": key.id, "rewrapped": moved}
        )
        usage = await key_usage(store.db)
        print(f"re-wrapped {moved} item(s); items per key: {json.dumps(usage, sort_keys=True)}")
        old = sorted(k for k in keyring.keys if k != key.id and not usage.get(k))
        if old:
            print("no longer used (retire with `upload-gate keys retire ID`): " + ", ".join(old))
        return 0

    return _with_store(args, work)


def run_retire(args: argparse.Namespace) -> int:
    async def work(store: Evidence) -> int:
        keyring = store.vault.keyring
        if keyring is None or keyring.path is None:
            raise KeyringError("retiring needs a keyring file (GATE_EVIDENCE_KEYS_FILE)")
        used = (await key_usage(store.db)).get(args.key_id, 0)
        if used:
            raise KeyringError(
                f"{args.key_id} still seals {used} item(s); run `upload-gate keys rotate` first"
            )
        keyring.retire(args.key_id)
        keyring.save()
        await store.audit.record(operator_name(None), "keys_retire", None, {"key_id": args.key_id})
        print(f"retired {args.key_id}; {len(keyring.keys)} key(s) left, active {keyring.active.id}")
        return 0

    return _with_store(args, work)


def run_list_keys(args: argparse.Namespace) -> int:
    async def work(store: Evidence) -> int:
        keyring = store.vault.keyring
        if keyring is None:
            raise KeyringError("no evidence key is configured; create one with `upload-gate keys init PATH`")
        usage = await key_usage(store.db)
        for key_id in sorted(set(keyring.keys) | set(usage)):
            mark = (
                "active "
                if key_id == keyring.active.id
                else ("MISSING" if key_id not in keyring.keys else "       ")
            )
            print(f"{mark} {key_id}  items={usage.get(key_id, 0)}")
        return 0

    return _with_store(args, work)


# ---- evidence ------------------------------------------------------------------------------------


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
        for item in items:
            expires = item.expires_at.isoformat(timespec="seconds") if item.expires_at else "-"
            print(
                f"{item.decision_id}  {item.created_at.isoformat(timespec='seconds')}  {item.state.value:9}"
                f"  {item.rule or '-'}  {item.cid}  bytes={'yes' if item.has_bytes else 'no'}  expires={expires}"
                + ("  legal-hold" if item.legal_hold else "")
            )
        return 0

    return _with_store(args, work)


def run_purge(args: argparse.Namespace) -> int:
    async def work(store: Evidence) -> int:
        purged = await purge(store.db, actor=operator_name(None))
        for p in purged:
            print(
                f"purged {p.decision_id} ({p.state}, sha256 {p.sha256}, expired {p.expired_at.isoformat()})"
            )
        print(f"{len(purged)} expired item(s) purged")
        return 0

    return _with_store(args, work)


def run_hold(args: argparse.Namespace) -> int:
    async def work(store: Evidence) -> int:
        item = await store.items.set_legal_hold(
            args.decision_id, operator_name(args.actor), True, args.reason
        )
        print(f"legal hold placed on {item.decision_id} by {item.legal_hold_by}: {item.legal_hold_reason}")
        return 0

    return _with_store(args, work)


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

    return _with_store(args, work)


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

    return _with_store(args, work)


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
