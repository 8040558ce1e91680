"""``upload-gate keys …``: the evidence keyring from the shell.

keys init [PATH]        create a keyring (mode 0600) with one active key (--if-missing: keep one
                        that is there, for start-up scripts and init containers)
keys rotate             add a new active key, then re-wrap every item onto it
keys retire ID          remove a key no item uses any more
keys list               key ids, which is active, how many items each seals
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gate.progress import Progress
from gate.quarantine.evidence_command import (
    Subparsers,
    fail,
    operator_name,
    required_keyring,
    settings_of,
    with_evidence,
)
from gate.quarantine.keys import Keyring, KeyringError, new_key
from gate.settings import SettingsError
from gate.store.evidence import Evidence
from gate.store.rewrap import key_usage, rewrap, to_rewrap

EXAMPLES = """\
examples:
  upload-gate keys init /etc/upload-gate/evidence-keys.json
  upload-gate keys list
  upload-gate keys rotate
  upload-gate keys retire k20260101T120000Z-3f2a1c"""


def register(sub: Subparsers) -> None:
    keys = sub.add_parser(
        "keys",
        help="the evidence keyring: init, rotate, retire, list",
        description="The keyring that seals quarantined uploads (GATE_EVIDENCE_KEYS_FILE). Keys never live "
        "in the database: keep a copy of the file somewhere safe, away from database backups; without it "
        "the evidence cannot be read.",
        epilog=EXAMPLES,
    )
    ks = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = ks.add_parser(
        "init",
        help="create a keyring file (mode 0600) with one key",
        description="Create a keyring file (mode 0600) with one active key. An existing file is never "
        "replaced: with --if-missing it is checked and kept, without it the command fails.",
        epilog="""\
examples:
  upload-gate keys init /etc/upload-gate/evidence-keys.json
  upload-gate keys init --if-missing          in a start-up script (path from GATE_EVIDENCE_KEYS_FILE)""",
    )
    p.add_argument("path", nargs="?", help="where to create it (default: GATE_EVIDENCE_KEYS_FILE)")
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="succeed without a change when a usable keyring is already there (for start-up scripts)",
    )
    p.set_defaults(func=run_init)
    p = ks.add_parser(
        "rotate",
        help="add a new active key and re-wrap every item onto it",
        description="Add a new active key to the keyring file, then re-wrap every item's data key onto it "
        "(the sealed bytes are not re-encrypted), showing progress. Running gates pick the new key up "
        "by themselves. Afterwards, retire the old key with `keys retire`.",
        epilog="examples:\n  upload-gate keys rotate\n  upload-gate keys list",
    )
    p.set_defaults(func=run_rotate)
    p = ks.add_parser(
        "retire",
        help="remove a key once no item uses it",
        description="Remove KEY_ID from the keyring; refused while any item is still sealed under it.",
        epilog="examples:\n  upload-gate keys list\n  upload-gate keys retire k20260101T120000Z-3f2a1c",
    )
    p.add_argument("key_id", help="a key id, as `keys list` prints it")
    p.set_defaults(func=run_retire)
    p = ks.add_parser(
        "list",
        help="key ids, the active one, and how many items each seals",
        description="Key ids, which one is active, and how many items each seals; MISSING marks a key "
        "that items use but the keyring lacks (restore the keyring they were sealed with).",
        epilog="examples:\n  upload-gate keys list",
    )
    p.set_defaults(func=run_list_keys)


def run_init(args: argparse.Namespace) -> int:
    try:
        settings = settings_of(args)
    except SettingsError as exc:
        return fail(str(exc))
    path = Path(args.path) if args.path else settings.evidence_keys_file
    if path is None and args.if_missing and settings.evidence_key:
        print("GATE_EVIDENCE_KEY is set: no keyring file to create")
        return 0
    if path is None:
        return fail("say where: `upload-gate keys init PATH` (or set GATE_EVIDENCE_KEYS_FILE)")
    if args.if_missing and (path.exists() or path.is_symlink()):
        # Never replaced, only checked: a new key here would leave every sealed item unreadable.
        try:
            existing = Keyring.load(path)
        except KeyringError as exc:
            return fail(str(exc))
        print(f"{path} exists (active key {existing.active.id}); left as it is")
        return 0
    key = new_key()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Keyring([key], key.id).save(path, create=True)
    except (KeyringError, OSError) as exc:
        return fail(str(exc))
    print(f"created {path} (mode 0600) with active key {key.id}")
    print(f"set GATE_EVIDENCE_KEYS_FILE={path.resolve()} and keep a copy somewhere safe: without it the")
    print("evidence cannot be read. Never store it with database backups.")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    try:
        keyring = required_keyring(settings_of(args))
        if keyring.path is None:
            raise KeyringError(
                "rotation needs a keyring file (GATE_EVIDENCE_KEYS_FILE), not GATE_EVIDENCE_KEY"
            )
        key = new_key()
        keyring.add_active(key)
        keyring.save()  # the new key is on disk before any item depends on it
    except (SettingsError, KeyringError, OSError) as exc:
        return fail(str(exc))
    print(f"new active key {key.id} written to {keyring.path}")

    async def work(store: Evidence) -> int:
        progress = Progress("re-wrapping evidence onto the new key", await to_rewrap(store.db, keyring))
        moved = await rewrap(store.db, keyring, progress)
        progress.finish()
        await store.audit.record(
            operator_name(None), "keys_rotate", None, {"active": key.id, "rewrapped": moved}
        )
        usage = await key_usage(store.db)
        print(f"re-wrapped {moved} item(s); items per key: {json.dumps(usage, sort_keys=True)}")
        old = sorted(k for k in keyring.keys if k != key.id and not usage.get(k))
        if old:
            print("no longer used (retire with `upload-gate keys retire ID`): " + ", ".join(old))
        return 0

    return with_evidence(args, work)


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

    return with_evidence(args, work)


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

    return with_evidence(args, work)
