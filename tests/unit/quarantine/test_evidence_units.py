"""Evidence pieces without a database: the [evidence] policy table, the key check, the keyring, and the
CID spellings getBlob withholding must recognise."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from gate.policy.load import PolicyError, parse_policy
from gate.proxy.routing import is_get_blob
from gate.quarantine.keys import EvidenceUnreadable, Keyring, KeyringError, new_key
from gate.quarantine.service import key_check
from gate.quarantine.withheld import WithheldBlobs, cid_sha256
from tests.support.cids import base58btc, cid_of

BASE = 'on_unhashable = "reject"\non_unscannable = "forward"\non_matcher_error = "reject"\non_log_failure = "forward"\n'
HOLD = '[[rules]]\nname = "hold"\nsource = "local"\nsignal_types = ["sha256"]\naction = "quarantine"\n'


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text.encode(), source="t")
    return info.value.problems


def test_evidence_table_defaults_and_values() -> None:
    default = parse_policy(BASE.encode(), source="t").evidence
    assert (default.keep_rejected, default.hold_days, default.reported_days, default.on_store_failure) == (
        False, 30, 366, "unavailable",
    )  # fmt: skip
    text = (
        BASE
        + "[evidence]\nkeep_rejected = true\nhold_days = 7\nreported_days = 730\non_store_failure = 'block'\n"
    )
    ev = parse_policy(text.encode(), source="t").evidence
    assert (ev.keep_rejected, ev.hold_days, ev.reported_days, ev.on_store_failure) == (True, 7, 730, "block")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("reported_days = 90", "evidence.reported_days: 90 is not a number of days ≥ 366"),
        ("hold_days = 0", "evidence.hold_days: 0 is not a number of days in 1–3650"),
        ("keep_rejected = 'yes'", "evidence.keep_rejected: 'yes' is not true or false"),
        ("on_store_failure = 'forward'", "evidence.on_store_failure: 'forward' is not one of"),
        ("retention = 3", "evidence.retention: unknown key"),
    ],
)
def test_evidence_table_mistakes_name_their_key(body: str, expected: str) -> None:
    [problem] = problems(BASE + "[evidence]\n" + body + "\n")
    assert problem.startswith(expected)


@pytest.mark.parametrize(
    ("text", "needs_key"),
    [
        (BASE, False),
        (BASE + HOLD, True),
        (BASE + HOLD.replace('action = "quarantine"', 'action = "quarantine"\nshadow = true'), False),
        (BASE.replace('on_matcher_error = "reject"', 'on_matcher_error = "quarantine"'), True),
        (BASE + "[evidence]\nkeep_rejected = true\n", True),  # on_unhashable rejects
    ],
)
async def test_key_check_asks_for_a_key_only_when_evidence_can_be_kept(text: str, needs_key: bool) -> None:
    policy = parse_policy(text.encode(), source="t")
    assert policy.keeps_evidence is needs_key
    found = await key_check(None)(policy)
    assert bool(found) is needs_key
    if found:
        assert "upload-gate keys init" in found[0]
    key = new_key()
    assert await key_check(Keyring([key], key.id))(policy) == []


@pytest.mark.parametrize(
    ("owner_is_root", "mode", "accepted"),
    [
        (False, 0o600, True),
        (False, 0o400, True),
        (False, 0o640, False),  # the gate's own file: nobody else reads it
        (False, 0o604, False),
        (True, 0o440, True),  # a Kubernetes Secret mounted with fsGroup: root:fsGroup, 0440
        (True, 0o640, True),  # PostgreSQL's rule for a root-owned server key
        (True, 0o660, False),  # group-writable: someone else could swap the key
        (True, 0o644, False),
    ],
)
def test_keyring_file_must_be_private(tmp_path: Path, owner_is_root: bool, mode: int, accepted: bool) -> None:
    if owner_is_root and os.geteuid() != 0:
        pytest.skip("needs root to make a root-owned file")  # the suite runs as root in CI
    path = tmp_path / "keys.json"
    Keyring([key := new_key()], key.id).save(path, create=True)
    if os.geteuid() == 0:
        os.chown(path, 0 if owner_is_root else 10001, 0 if owner_is_root else 10001)
    path.chmod(mode)
    if accepted:
        assert Keyring.load(path).active.id == key.id
    else:
        with pytest.raises(KeyringError, match=f"open to others \\(mode {mode:o}\\); run: chmod 600"):
            Keyring.load(path)


def test_env_key_and_its_mistakes() -> None:
    secret = bytes(range(32))
    ring = Keyring.from_env(base64.b64encode(secret).decode())
    assert ring.active.secret == secret and ring.active.id.startswith("env-")
    assert secret.hex() not in repr(ring.active) and "secret" not in repr(ring.active)
    with pytest.raises(KeyringError, match="32 bytes"):
        Keyring.from_env(base64.b64encode(b"short").decode())
    with pytest.raises(KeyringError, match="not base64"):
        Keyring.from_env("not base64 at all!")
    with pytest.raises(KeyringError, match="not both"):
        Keyring.configured(__import__("pathlib").Path("/nonexistent"), "x")


def test_sealed_bytes_are_bound_to_their_decision() -> None:
    key = new_key()
    ring = Keyring([key], key.id)
    first, second = "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b", "0190a1b2c3d47e5f8a9b0c1d2e3f4a5c"
    sealed = ring.seal(b"bytes", first)
    assert ring.open(sealed, first) == b"bytes"
    assert ring.open(sealed, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") == b"bytes"  # same id, other spelling
    with pytest.raises(EvidenceUnreadable):
        ring.open(sealed, second)


def base36(raw: bytes) -> str:
    num, out = int.from_bytes(raw, "big"), ""
    while num:
        num, rem = divmod(num, 36)
        out = "0123456789abcdefghijklmnopqrstuvwxyz"[rem] + out
    return out


def test_every_cid_spelling_names_the_same_sha256() -> None:
    data = b"some blob"
    digest = hashlib.sha256(data).digest()
    v1_raw = bytes([0x01, 0x55, 0x12, 0x20]) + digest
    v1_cbor = bytes([0x01, 0x71, 0x12, 0x20]) + digest
    spellings = [
        cid_of(data),  # what the PDS stores: base32, raw codec
        cid_of(data).upper(),  # "B" + upper-case base32
        "z" + base58btc(v1_raw),
        "k" + base36(v1_raw),
        "f" + v1_raw.hex(),
        "b" + base64.b32encode(v1_cbor).decode().lower().rstrip("="),  # another codec, same bytes
        base58btc(bytes([0x12, 0x20]) + digest),  # CIDv0 "Qm…"
    ]
    assert all(cid_sha256(s) == digest.hex() for s in spellings), [cid_sha256(s) for s in spellings]
    for junk in (
        "",
        "bafy",
        "Qm",
        "not-a-cid",
        "z0OIl",
        "b" + base64.b32encode(b"\x01\x55\x11\x14" + digest[:20]).decode().lower(),
    ):
        assert cid_sha256(junk) is None, junk
    withheld = WithheldBlobs()
    withheld.add(digest.hex())
    assert withheld.withholds(["bafkreiother", "z" + base58btc(v1_raw)])
    assert not withheld.withholds([cid_of(b"other")])
    withheld.discard(digest.hex())
    assert not withheld.withholds([cid_of(data)])


async def test_a_refresh_racing_the_decision_write_keeps_the_blob_withheld() -> None:
    """The pipeline blocks a blob (withheld at once) and its decision row is written a moment later; a
    refresh that reads Postgres in between must not drop it. Once a load contains it, the database
    speaks for it (a release then lets it go)."""
    withheld = WithheldBlobs()
    blocked, older = "ab" * 32, "cd" * 32
    database = {older}

    async def load() -> set[str]:
        return set(database)

    withheld.add(blocked)  # blocked by the pipeline; its row is not written yet
    await withheld.refresh(load)
    assert blocked in withheld and older in withheld
    database.add(blocked)  # the row is written: the next refresh finds it in the database
    await withheld.refresh(load)
    assert blocked in withheld and older in withheld
    withheld.discard(blocked)  # a release
    database.discard(blocked)
    await withheld.refresh(load)
    assert blocked not in withheld and older in withheld


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/xrpc/com.atproto.sync.getBlob?did=x&cid=y", True),
        ("GET", "/XRPC/com.atproto.sync.getblob/?cid=y", True),
        ("HEAD", "/xrpc/com.atproto.sync.getBl%6Fb?cid=y", True),
        ("GET", "//xrpc//com.atproto.sync.getBlob?cid=y", True),
        ("POST", "/xrpc/com.atproto.sync.getBlob", False),
        ("GET", "/xrpc/com.atproto.sync.getBlocks?cid=y", False),
    ],
)
def test_get_blob_route_in_every_spelling(method: str, path: str, expected: bool) -> None:
    assert is_get_blob(method, path) is expected
