"""``Vault``: upload bytes sealed into Postgres, and opened again for a person who is audited doing so.

Trust boundary: the plaintext exists only in memory: from the request body to the cipher to Postgres,
and from Postgres through the cipher to the caller. It is never logged and never written to a file here.
The keyring (``gate.quarantine.keys``) comes from a file or the environment, never from the database;
its file is re-read when it changes (``upload-gate keys rotate`` while the gate runs), so new items use
the new active key and re-wrapped items keep opening.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from gate.errors import Refusal
from gate.quarantine.keys import Keyring, KeyringError, Sealed
from gate.record import DecisionRecord
from gate.store.audit import record_audit
from gate.store.pool import StoreUnavailable
from gate.store.retention import Retention
from gate.store.transitions import EvidenceNotFound
from gate.watch import FileWatch

if TYPE_CHECKING:
    from gate.store.pool import Pool

log = logging.getLogger("gate.evidence")

HOUR = timedelta(hours=1)
GCM_TAG_BYTES = 16  # what AES-GCM adds to the plaintext's length


def held_while_kept(size: int) -> int:
    """Bytes ``Vault.keep`` holds for a body of ``size`` bytes beyond the body itself: the ciphertext,
    and asyncpg's copy of it, encoded into the INSERT's message, until the INSERT is done (the memory
    budget counts them: gate/proxy/budget.py)."""
    return 2 * (size + GCM_TAG_BYTES)


class EvidenceCapped(Refusal):
    """The uploader reached the policy's evidence cap for this hour: nothing was stored."""


def item_uuid(decision_id: str) -> uuid.UUID:
    """A decision id in any spelling, as the evidence table keys it; EvidenceNotFound if it is none."""
    try:
        return uuid.UUID(str(decision_id))
    except ValueError:
        raise EvidenceNotFound(decision_id) from None


class Vault:
    def __init__(self, db: Pool, keyring: Keyring | None) -> None:
        self.db = db
        self.keyring = keyring
        self._key_file = FileWatch(keyring.path) if keyring is not None and keyring.path else None
        if self._key_file is not None:
            self._key_file.seen(self._key_file.look())

    def current_keyring(self) -> Keyring:
        """The keyring, re-read first if its file changed."""
        if self.keyring is None:
            raise StoreUnavailable("no evidence key is configured (upload-gate keys init)")
        watch = self._key_file
        stamp = watch.changed() if watch is not None else None
        if watch is not None and stamp is not None and self.keyring.path is not None:
            watch.seen(stamp)  # a bad file is reported once, not at every use
            try:
                self.keyring = Keyring.load(self.keyring.path)
                log.warning("evidence keyring re-read: active key %s", self.keyring.active.id)
            except KeyringError as exc:
                log.error("evidence keyring changed but is unusable, keeping the loaded one: %s", exc)
        return self.keyring

    async def keep(
        self, record: DecisionRecord, body: bytes, retention: Retention, *, hourly_cap: int | None = None
    ) -> None:
        """Seal ``body`` and insert it with a snapshot of its decision, before the upload is answered.

        The pipeline keeps evidence only for callers the PDS accepted; the item names the uploader's
        verified DID (and the token's claim beside it), never a bare claim. ``hourly_cap``: at most that
        many items per verified DID in the hour before the upload; past it nothing is stored and
        ``EvidenceCapped`` is raised (the verdict stands)."""
        h, d, u = record.hashes, record.decision, record.uploader
        if h is None or d is None:
            raise ValueError("evidence needs a judged upload (hashes and decision)")
        verified_did = u.did if u.verified else None
        keyring = self.current_keyring()
        # AES-GCM over up to GATE_MAX_UPLOAD_BYTES: off the event loop (OpenSSL releases the GIL).
        sealed = await asyncio.to_thread(keyring.seal, body, record.id)
        pdq = [p.to_json() for p in h.pdq]
        args = (
            item_uuid(record.id), record.time, d.verdict.value, h.sha256, h.md5, h.sha1, h.cid, h.size,
            h.media_type, record.declared_type, json.dumps(pdq), d.rule, d.reason,
            json.dumps([m.to_json() for m in d.matches]), d.policy_version, record.client_ip,
            u.claimed_did if verified_did else None, u.method, sealed.key_id, sealed.wrapped_key, sealed.nonce,
            sealed.ciphertext, retention.held_until(record.time), verified_did,
            u.verified_how if verified_did else None, record.time if verified_did else None,
            record.record_uri,
        )  # fmt: skip
        async with self.db.transaction() as conn:
            if hourly_cap is not None and verified_did is not None:
                # One account's uploads are counted one at a time (concurrent uploads of one DID would
                # otherwise all see the same count and all pass).
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 12))", verified_did)
                recent = await conn.fetchval(
                    "SELECT count(*) FROM evidence WHERE verified_did = $1 AND created_at > $2",
                    verified_did,
                    record.time - HOUR,
                )
                if recent >= hourly_cap:
                    raise EvidenceCapped(f"{recent} items kept for this uploader in the last hour")
            await conn.execute(
                "INSERT INTO evidence (decision_id, created_at, verdict, sha256, md5, sha1, cid, size,"
                " media_type, declared_type, pdq, rule, reason, matches, policy_version, client_ip, did,"
                " did_method, key_id, wrapped_key, nonce, ciphertext, expires_at, verified_did, verified_how,"
                " verified_at, record_uri, state_changed_at, state_changed_by) VALUES ($1, $2, $3, $4, $5, $6,"
                " $7, $8, $9, $10, $11::jsonb, $12, $13, $14::jsonb, $15, $16::inet, $17, $18, $19, $20, $21,"
                " $22, $23, $24, $25, $26, $27, $2, 'gate')"
                " ON CONFLICT (decision_id) DO NOTHING",
                *args,
            )

    async def decrypt(self, decision_id: str, actor: str, purpose: str) -> bytes:
        """The original bytes, in memory. Audited as ``purpose`` (preview, reveal, export) by ``actor``;
        EvidenceNotFound when the item does not exist or its bytes were released or purged."""
        keyring = self.current_keyring()
        key = item_uuid(decision_id)
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT key_id, wrapped_key, nonce, ciphertext FROM evidence WHERE decision_id = $1", key
            )
            if row is None or row["ciphertext"] is None:
                raise EvidenceNotFound(decision_id)
            await record_audit(conn, actor, purpose, str(key), {"key_id": row["key_id"]})
            sealed = Sealed(row["key_id"], row["wrapped_key"], row["nonce"], row["ciphertext"])
        return await asyncio.to_thread(keyring.open, sealed, str(key))
