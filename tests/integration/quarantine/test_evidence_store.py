"""The evidence store on a real Postgres: sealed bytes round-trip, and nothing else opens them."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import asyncpg
import pytest

from gate.quarantine.keys import EvidenceUnreadable, Keyring
from gate.store.evidence import Evidence
from gate.store.item import EvidenceState
from gate.store.retention import Retention
from gate.store.transitions import EvidenceNotFound
from gate.store.vault import EvidenceCapped
from gate.types import Uploader

from .conftest import DID, judged, make_keyring

BODY = b"\xff\xd8\xff\xe0 not really a jpeg but bytes all the same" * 50


async def test_round_trip_and_metadata(store: Evidence, fresh_dsn: str) -> None:
    record = judged(BODY)
    await store.vault.keep(record, BODY, Retention(hold_days=7))
    assert await store.vault.decrypt(record.id, "alice", "reveal") == BODY
    item = await store.items.get(record.id)
    assert item is not None
    assert item.decision_id == str(uuid.UUID(record.id))
    assert (item.state, item.sha256, item.did, item.verified_did) == (
        EvidenceState.HELD, record.hashes.sha256 if record.hashes else None, DID, DID,
    )  # fmt: skip
    assert item.has_bytes and item.key_id == store.vault.keyring.active.id if store.vault.keyring else False
    assert item.expires_at is not None and (item.expires_at - record.time).days == 7
    assert [e.action for e in await store.audit.trail(item.decision_id)] == ["reveal"]
    # What sits in Postgres is not the bytes.
    conn = await asyncpg.connect(fresh_dsn)
    try:
        stored = await conn.fetchval("SELECT ciphertext FROM evidence")
    finally:
        await conn.close()
    assert BODY[:32] not in stored and len(stored) == len(BODY) + 16


async def test_wrong_key_does_not_open(store: Evidence) -> None:
    record = judged(BODY)
    await store.vault.keep(record, BODY, Retention())
    other = make_keyring()
    # Same key id, different secret: the wrapped data key does not unwrap.
    assert store.vault.keyring is not None
    impostor = Keyring(
        [type(other.active)(store.vault.keyring.active.id, other.active.secret)],
        store.vault.keyring.active.id,
    )
    store.vault.keyring = impostor
    with pytest.raises(EvidenceUnreadable):
        await store.vault.decrypt(record.id, "alice", "reveal")
    store.vault.keyring = other  # a keyring without the item's key at all
    with pytest.raises(EvidenceUnreadable):
        await store.vault.decrypt(record.id, "alice", "reveal")


@pytest.mark.parametrize("column", ["ciphertext", "nonce", "wrapped_key"])
async def test_tampered_item_does_not_open(store: Evidence, fresh_dsn: str, column: str) -> None:
    record = judged(BODY)
    await store.vault.keep(record, BODY, Retention())
    conn = await asyncpg.connect(fresh_dsn)
    try:
        value = bytearray(await conn.fetchval(f"SELECT {column} FROM evidence"))
        value[-1] ^= 1
        await conn.execute(f"UPDATE evidence SET {column} = $1", bytes(value))
    finally:
        await conn.close()
    with pytest.raises(EvidenceUnreadable):
        await store.vault.decrypt(record.id, "alice", "reveal")


async def test_ciphertext_moved_to_another_decision_does_not_open(store: Evidence, fresh_dsn: str) -> None:
    first, second = judged(BODY), judged(b"other bytes")
    await store.vault.keep(first, BODY, Retention())
    await store.vault.keep(second, b"other bytes", Retention())
    conn = await asyncpg.connect(fresh_dsn)
    try:
        # Copy the first item's sealed bytes onto the second row: the associated data no longer fits.
        await conn.execute(
            "UPDATE evidence AS t SET key_id = s.key_id, wrapped_key = s.wrapped_key, nonce = s.nonce,"
            " ciphertext = s.ciphertext FROM evidence AS s WHERE s.decision_id = $1 AND t.decision_id = $2",
            uuid.UUID(first.id),
            uuid.UUID(second.id),
        )
    finally:
        await conn.close()
    with pytest.raises(EvidenceUnreadable):
        await store.vault.decrypt(second.id, "alice", "reveal")
    assert await store.vault.decrypt(first.id, "alice", "reveal") == BODY


async def test_release_deletes_bytes_and_audits(store: Evidence) -> None:
    record = judged(BODY)
    await store.vault.keep(record, BODY, Retention())
    item = await store.items.release(record.id, "bob")
    assert (item.state, item.has_bytes, item.purge_reason) == (EvidenceState.RELEASED, False, "released")
    with pytest.raises(EvidenceNotFound):
        await store.vault.decrypt(record.id, "bob", "reveal")
    assert [(e.actor, e.action) for e in await store.audit.trail(item.decision_id)] == [("bob", "released")]
    assert [i.decision_id for i in await store.items.list_items(EvidenceState.RELEASED)] == [item.decision_id]
    assert await store.items.list_items(EvidenceState.HELD) == []


async def test_the_verified_uploader_is_stored_with_its_claim_kept_apart(store: Evidence) -> None:
    verified = judged(BODY)
    await store.vault.keep(verified, BODY, Retention())
    item = await store.items.get(verified.id)
    assert item is not None
    assert (item.did, item.verified_did, item.verified_how, item.verified_at) == (
        DID,
        DID,
        "pds",
        verified.time,
    )
    # A token the PDS accepted but whose subject the gate cannot read: kept, naming nobody.
    nameless = dataclasses.replace(judged(b"x"), uploader=Uploader(None, "unknown"))
    await store.vault.keep(nameless, b"x", Retention(), hourly_cap=1)
    other = await store.items.get(nameless.id)
    assert other is not None and (other.did, other.verified_did, other.verified_how) == (None, None, None)


async def test_the_hourly_cap_counts_one_uploader_and_stores_nothing_past_it(store: Evidence) -> None:
    kept = [judged(bytes([i])) for i in range(3)]
    await asyncio.gather(*(store.vault.keep(r, r.id.encode(), Retention(), hourly_cap=2) for r in kept[:2]))
    with pytest.raises(EvidenceCapped):
        await store.vault.keep(kept[2], b"third", Retention(), hourly_cap=2)
    assert await store.items.get(kept[2].id) is None
    # Another account has its own allowance, and an hour later the first one has its own again.
    other = dataclasses.replace(
        judged(b"o"), uploader=Uploader("did:plc:other", "oauth", "pds", "did:plc:other")
    )
    await store.vault.keep(other, b"o", Retention(), hourly_cap=2)
    later = dataclasses.replace(judged(b"l"), time=kept[0].time + timedelta(hours=1, seconds=1))
    await store.vault.keep(later, b"l", Retention(), hourly_cap=2)
    assert all([await store.items.get(other.id), await store.items.get(later.id)])
