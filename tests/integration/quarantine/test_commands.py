"""``upload-gate keys …`` and ``upload-gate evidence …`` run as operators run them, against a real
Postgres: init, rotation (old items stay readable), retire, purge and an audited export."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gate.quarantine.keys import Keyring, KeyringError
from gate.store.evidence import Evidence
from gate.store.pool import Pool
from gate.store.retention import Retention
from tests.support.boot import gate_command

from .conftest import DID, judged

TEST_KEY = base64.b64encode(bytes(range(32))).decode()


def gate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return gate_command(*args, env=env)


@pytest.fixture
def env(tmp_path: Path, fresh_dsn: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATE_") and k != "DATABASE_URL"}
    return base | {
        "DATABASE_URL": fresh_dsn,
        "GATE_DATA_DIR": str(tmp_path / "var"),
        "GATE_EVIDENCE_KEYS_FILE": str(tmp_path / "keys.json"),
    }


def test_init_creates_a_private_keyring_once(env: dict[str, str]) -> None:
    path = Path(env["GATE_EVIDENCE_KEYS_FILE"])
    done = gate(env, "keys", "init")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.load(path).active.id in done.stdout
    again = gate(env, "keys", "init")
    assert again.returncode == 2 and "already exists" in again.stderr
    path.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        Keyring.load(path)


def test_init_if_missing_creates_once_then_only_checks(env: dict[str, str]) -> None:
    """The image's start-up step: run before every start, it creates the keyring the first time and
    never replaces it (a new key would leave every sealed item unreadable)."""
    path = Path(env["GATE_EVIDENCE_KEYS_FILE"])
    first = gate(env, "keys", "init", "--if-missing")
    assert first.returncode == 0, first.stderr
    made = path.read_bytes()
    active = Keyring.load(path).active.id
    again = gate(env, "keys", "init", "--if-missing")
    assert again.returncode == 0 and active in again.stdout and "left as it is" in again.stdout
    assert path.read_bytes() == made
    path.chmod(0o644)  # unusable: refused loudly, and still not replaced
    refused = gate(env, "keys", "init", "--if-missing")
    assert refused.returncode == 2 and "chmod 600" in refused.stderr
    assert path.read_bytes() == made
    path.unlink()
    no_file = env | {"GATE_EVIDENCE_KEYS_FILE": "", "GATE_EVIDENCE_KEY": TEST_KEY}
    done = gate(no_file, "keys", "init", "--if-missing")
    assert done.returncode == 0 and "GATE_EVIDENCE_KEY is set" in done.stdout
    assert not path.exists()


async def test_rotate_rewraps_and_old_items_stay_readable(env: dict[str, str], fresh_dsn: str) -> None:
    assert gate(env, "keys", "init").returncode == 0
    path = Path(env["GATE_EVIDENCE_KEYS_FILE"])
    old = Keyring.load(path)
    store = Evidence.on(Pool(fresh_dsn), old)
    try:
        records = [judged(f"item {i}".encode()) for i in range(3)]
        for r in records:
            await store.vault.keep(r, r.id.encode(), Retention())
        retire_early = gate(env, "keys", "retire", old.active.id)
        assert retire_early.returncode == 2 and "still seals 3 item(s)" in retire_early.stderr

        rotated = gate(env, "keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        assert "re-wrapped 3 item(s)" in rotated.stdout
        # Progress goes to stderr (stdout stays the command's output): here one batch, one line.
        assert rotated.stderr.count("re-wrapping evidence onto the new key: 3/3 (100%)\n") == 1
        new = Keyring.load(path)
        assert new.active.id != old.active.id and old.active.id in new.keys
        # The running store re-reads the changed keyring file: every item opens, under the new key.
        for r in records:
            assert await store.vault.decrypt(r.id, "t", "reveal") == r.id.encode()
            item = await store.items.get(r.id)
            assert item is not None and item.key_id == new.active.id
        # Nothing uses the old key any more: it can be retired, and the items still open without it.
        retired = gate(env, "keys", "retire", old.active.id)
        assert retired.returncode == 0, retired.stderr
        assert old.active.id not in Keyring.load(path).keys
        assert await store.vault.decrypt(records[0].id, "t", "reveal") == records[0].id.encode()
        listed = gate(env, "keys", "list")
        assert listed.returncode == 0 and f"active  {new.active.id}  items=3" in listed.stdout
    finally:
        await store.db.close()


async def test_purge_command_deletes_expired_and_says_what(env: dict[str, str], fresh_dsn: str) -> None:
    assert gate(env, "keys", "init").returncode == 0
    store = Evidence.on(Pool(fresh_dsn), Keyring.load(Path(env["GATE_EVIDENCE_KEYS_FILE"])))
    try:
        expired = judged(b"old", when=datetime.now(UTC) - timedelta(days=31))
        kept = judged(b"new")
        await store.vault.keep(expired, b"old", Retention(hold_days=30))
        await store.vault.keep(kept, b"new", Retention(hold_days=30))
        done = gate(env, "evidence", "purge")
        assert done.returncode == 0, done.stderr
        assert f"purged {uuid.UUID(expired.id)}" in done.stdout and "1 expired item(s) purged" in done.stdout
        assert await store.vault.decrypt(kept.id, "t", "reveal") == b"new"
    finally:
        await store.db.close()


async def test_export_writes_bytes_and_manifest_and_is_audited(
    env: dict[str, str], fresh_dsn: str, tmp_path: Path
) -> None:
    assert gate(env, "keys", "init").returncode == 0
    store = Evidence.on(Pool(fresh_dsn), Keyring.load(Path(env["GATE_EVIDENCE_KEYS_FILE"])))
    body = b"\x89PNG evidence bytes" * 100
    record = judged(body)
    item_id = str(uuid.UUID(record.id))
    try:
        await store.vault.keep(record, body, Retention())
        await store.vault.decrypt(record.id, "reviewer-ann", "reveal")
        await store.items.mark_viewed(record.id, "reviewer-ann")
        out = tmp_path / "export"
        done = gate(env, "evidence", "export", record.id, "--out", str(out), "--actor", "officer-bo")
        assert done.returncode == 0, done.stderr
        data = (out / f"{item_id}.bin").read_bytes()
        manifest = json.loads((out / f"{item_id}.json").read_text())
        assert data == body
        assert stat.S_IMODE((out / f"{item_id}.bin").stat().st_mode) == 0o600
        assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
        assert manifest["cid"] == (record.hashes.cid if record.hashes else None)
        assert manifest["uploader"]["did_claimed"] == DID and manifest["uploader"]["did_verified"] == DID
        assert manifest["uploader"]["verified_how"] == "pds"
        assert manifest["item"]["matches"][0]["bank"] == "review"
        assert manifest["human_viewed"] is True
        assert manifest["viewed_by"] == ["officer-bo", "reviewer-ann"]
        trail = await store.audit.trail(item_id)
        assert [(e.actor, e.action) for e in trail] == [
            ("reviewer-ann", "reveal"),
            ("reviewer-ann", "viewed"),
            ("officer-bo", "export"),
        ]
        missing = gate(env, "evidence", "export", str(uuid.uuid4()), "--out", str(out))
        assert missing.returncode == 2 and "no evidence" in missing.stderr
    finally:
        await store.db.close()
