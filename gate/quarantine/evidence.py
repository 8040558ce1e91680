"""``EvidenceStore``: sealed upload bytes in Postgres, their retention states, and the audit trail.

The Python API the admin API / review page (and the CLI) build on — signatures are kept stable:

    store = EvidenceStore(pool, keyring)            # pool: gate.store.pool.Pool; keyring: Keyring | None
    await store.start()                             # connect + schema migrations, if Postgres answers
    await store.keep(record, body, retention, hourly_cap=None)  # the pipeline: seal and insert
                                                   # (StoreUnavailable, EvidenceCapped)
    await store.list_items(state=None, limit=100, before=None, with_bytes_only=False) -> [EvidenceItem]
    await store.get(decision_id) -> EvidenceItem | None          # metadata only, never bytes
    await store.decrypt(decision_id, actor, purpose) -> bytes   # audited (action = purpose:
                                                                # "preview", "reveal", "export", ...)
    await store.release(decision_id, actor) -> EvidenceItem     # deletes the bytes at once; then call
                                                                # deps.withheld.discard(item.sha256) so
                                                                # getBlob serves it again now (else the
                                                                # next refresh does)
    await store.confirm(decision_id, actor) -> EvidenceItem
    await store.mark_reported(decision_id, actor, report_id, retention) -> EvidenceItem
    await store.set_legal_hold(decision_id, actor, on, reason) -> EvidenceItem   # reason: the matter
    await store.mark_viewed(decision_id, actor) -> None         # a human saw the original bytes
    await store.audit(actor, action, subject=None, detail=None) -> None
    await store.audit_trail(subject) -> [AuditEntry]
    await store.purge(now=None) -> [Purged]                      # expired evidence only; audited
    await store.rewrap(keyring) -> int                           # re-wrap items onto the active key
    await store.key_usage() -> {key_id: items}
    await store.ping() -> None                                   # readiness
    await store.blocked_sha256() -> set[str]                     # for getBlob withholding

State changes, decrypts and purges write their own ``audit`` row in the same transaction, so none can
happen unrecorded; callers audit only their own accesses (list, preview page views, ...). Failures to
reach Postgres raise ``StoreUnavailable``; unknown ids ``EvidenceNotFound``; a forbidden change
``InvalidTransition``; a ciphertext that does not open ``EvidenceUnreadable``.

Trust boundary: the plaintext exists only in memory: from the request body to the cipher to Postgres,
and from Postgres through the cipher to the caller. It is never logged and never written to a file here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from gate.errors import Refusal
from gate.quarantine.item import (
    ITEM_COLUMNS,
    SELECT_ITEM,
    AuditEntry,
    EvidenceItem,
    EvidenceState,
    item_from_row,
)
from gate.quarantine.keys import EvidenceUnreadable, Keyring, KeyringError, Sealed
from gate.quarantine.retention import (
    EvidenceNotFound,
    InvalidTransition,
    Purged,
    Retention,
    change_hold,
    change_state,
    purge_expired,
)
from gate.record import DecisionRecord
from gate.store.audit import Audit, record_audit
from gate.store.pool import Pool, StoreUnavailable
from gate.watch import FileWatch

if TYPE_CHECKING:
    from gate.store.pool import Connection

log = logging.getLogger("gate.evidence")

__all__ = [
    "EvidenceCapped",
    "EvidenceItem",
    "EvidenceNotFound",
    "EvidenceState",
    "EvidenceStore",
    "EvidenceUnreadable",
    "InvalidTransition",
    "Retention",
    "StoreUnavailable",
]

T = TypeVar("T")


class EvidenceCapped(Refusal):
    """The uploader reached the policy's evidence cap for this hour: nothing was stored."""


HOUR = timedelta(hours=1)


def _uuid(decision_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(decision_id))
    except ValueError:
        raise EvidenceNotFound(decision_id) from None


class EvidenceStore:
    def __init__(self, db: Pool, keyring: Keyring | None) -> None:
        self.db = db
        self.keyring = keyring
        self._audit = Audit(db)
        # `keys rotate` while the gate runs: the file is re-read when it changes.
        self._key_file = FileWatch(keyring.path) if keyring is not None and keyring.path else None
        if self._key_file is not None:
            self._key_file.seen(self._key_file.look())

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and migrate now if Postgres answers; if not, the first use retries."""
        try:
            await self.db.get()
        except StoreUnavailable as exc:
            log.error("evidence store: %s; will retry on first use", exc)

    async def _run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``work(conn)`` in a transaction; database failures become StoreUnavailable."""
        async with self.db.transaction() as conn:
            return await work(conn)

    def _keyring(self) -> Keyring:
        """The keyring, re-read when its file changed (``keys rotate`` while the gate runs): new items
        then use the new active key and re-wrapped items keep opening."""
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

    # ---- the pipeline ----------------------------------------------------------------------------

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
        keyring = self._keyring()
        # AES-GCM over up to GATE_MAX_UPLOAD_BYTES: off the event loop (OpenSSL releases the GIL).
        sealed = await asyncio.to_thread(keyring.seal, body, record.id)
        pdq = [p.to_json() for p in h.pdq]
        args = (
            _uuid(record.id), record.time, d.verdict.value, h.sha256, h.md5, h.sha1, h.cid, h.size,
            h.media_type, record.declared_type, json.dumps(pdq), d.rule, d.reason,
            json.dumps([m.to_json() for m in d.matches]), d.policy_version, record.client_ip,
            u.claimed_did if verified_did else None, u.method, sealed.key_id, sealed.wrapped_key, sealed.nonce,
            sealed.ciphertext, retention.held_until(record.time), verified_did,
            u.verified_how if verified_did else None, record.time if verified_did else None,
        )  # fmt: skip

        async def work(conn: Connection) -> None:
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
                " verified_at, state_changed_at, state_changed_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
                " $9, $10, $11::jsonb, $12, $13, $14::jsonb, $15, $16::inet, $17, $18, $19, $20, $21, $22,"
                " $23, $24, $25, $26, $2, 'gate')"
                " ON CONFLICT (decision_id) DO NOTHING",
                *args,
            )

        await self._run(work)

    # ---- reading ---------------------------------------------------------------------------------

    async def list_items(
        self,
        state: EvidenceState | None = None,
        *,
        limit: int = 100,
        before: datetime | None = None,
        with_bytes_only: bool = False,
    ) -> list[EvidenceItem]:
        """Newest first; ``before`` pages on created_at."""

        async def work(conn: Connection) -> list[EvidenceItem]:
            rows = await conn.fetch(
                f"SELECT {ITEM_COLUMNS} FROM evidence WHERE ($1::text IS NULL OR state = $1)"  # noqa: S608
                " AND ($2::timestamptz IS NULL OR created_at < $2) AND (NOT $3 OR ciphertext IS NOT NULL)"
                " ORDER BY created_at DESC, decision_id DESC LIMIT $4",
                state.value if state else None,
                before,
                with_bytes_only,
                limit,
            )
            return [item_from_row(r) for r in rows]

        return await self._run(work)

    async def get(self, decision_id: str) -> EvidenceItem | None:
        async def work(conn: Connection) -> EvidenceItem | None:
            row = await conn.fetchrow(
                SELECT_ITEM,
                _uuid(decision_id),
            )
            return item_from_row(row) if row is not None else None

        try:
            result: EvidenceItem | None = await self._run(work)
        except EvidenceNotFound:
            return None
        return result

    async def decrypt(self, decision_id: str, actor: str, purpose: str) -> bytes:
        """The original bytes, in memory. Audited as ``purpose`` by ``actor``; EvidenceNotFound when the
        item does not exist or its bytes were released or purged."""
        keyring = self._keyring()
        did = _uuid(decision_id)

        async def work(conn: Connection) -> Sealed:
            row = await conn.fetchrow(
                "SELECT key_id, wrapped_key, nonce, ciphertext FROM evidence WHERE decision_id = $1", did
            )
            if row is None or row["ciphertext"] is None:
                raise EvidenceNotFound(decision_id)
            await record_audit(conn, actor, purpose, str(did), {"key_id": row["key_id"]})
            return Sealed(row["key_id"], row["wrapped_key"], row["nonce"], row["ciphertext"])

        sealed: Sealed = await self._run(work)
        return await asyncio.to_thread(keyring.open, sealed, str(did))

    async def audit(
        self, actor: str, action: str, subject: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        await self._audit.record(actor, action, subject, detail)

    async def audit_trail(self, subject: str) -> list[AuditEntry]:
        return await self._audit.trail(subject)

    # ---- state changes (each audited in its own transaction) -------------------------------------

    async def _change(
        self, decision_id: str, target: EvidenceState, actor: str, retention: Retention, **extra: Any
    ) -> EvidenceItem:
        did = _uuid(decision_id)
        now = datetime.now(UTC)

        async def work(conn: Connection) -> EvidenceItem:
            item = await change_state(conn, did, target, actor, now, retention, **extra)
            await record_audit(
                conn, actor, target.value, str(did), {k: v for k, v in extra.items() if v is not None}
            )
            return item

        return await self._run(work)

    async def release(self, decision_id: str, actor: str) -> EvidenceItem:
        return await self._change(decision_id, EvidenceState.RELEASED, actor, Retention())

    async def confirm(self, decision_id: str, actor: str) -> EvidenceItem:
        return await self._change(decision_id, EvidenceState.CONFIRMED, actor, Retention())

    async def mark_reported(
        self, decision_id: str, actor: str, report_id: str, retention: Retention | None = None
    ) -> EvidenceItem:
        return await self._change(
            decision_id, EvidenceState.REPORTED, actor, retention or Retention(), report_id=report_id
        )

    async def set_legal_hold(
        self, decision_id: str, actor: str, on: bool, reason: str | None = None
    ) -> EvidenceItem:
        """Place (``on``, ``reason`` required: the matter) or lift a legal hold; audited as
        ``legal_hold`` / ``legal_hold_lifted`` in the same transaction."""
        did = _uuid(decision_id)
        now = datetime.now(UTC)

        async def work(conn: Connection) -> EvidenceItem:
            item, detail = await change_hold(conn, did, on, actor, now, reason)
            await record_audit(conn, actor, "legal_hold" if on else "legal_hold_lifted", str(did), detail)
            return item

        return await self._run(work)

    async def mark_viewed(self, decision_id: str, actor: str) -> None:
        did = _uuid(decision_id)

        async def work(conn: Connection) -> None:
            done = await conn.execute("UPDATE evidence SET human_viewed = true WHERE decision_id = $1", did)
            if done.endswith(" 0"):
                raise EvidenceNotFound(decision_id)
            await record_audit(conn, actor, "viewed", str(did), {})

        await self._run(work)

    # ---- maintenance -----------------------------------------------------------------------------

    async def purge(self, now: datetime | None = None, actor: str = "gate") -> list[Purged]:
        at = now or datetime.now(UTC)

        async def work(conn: Connection) -> list[Purged]:
            purged = await purge_expired(conn, at)
            for p in purged:
                await record_audit(
                    conn,
                    actor,
                    "purge",
                    p.decision_id,
                    {"state": p.state, "expired_at": p.expired_at.isoformat()},
                )
            return purged

        return await self._run(work)

    async def rewrap(self, keyring: Keyring) -> int:
        """Re-wrap every item not under the active key (one short transaction per batch)."""
        total = 0
        while True:

            async def work(conn: Connection) -> int:
                rows = await conn.fetch(
                    "SELECT decision_id, key_id, wrapped_key FROM evidence WHERE ciphertext IS NOT NULL"
                    " AND key_id <> $1 LIMIT 200 FOR UPDATE SKIP LOCKED",
                    keyring.active.id,
                )
                for r in rows:
                    key_id, wrapped = keyring.rewrap(r["key_id"], r["wrapped_key"], str(r["decision_id"]))
                    await conn.execute(
                        "UPDATE evidence SET key_id = $2, wrapped_key = $3 WHERE decision_id = $1",
                        r["decision_id"],
                        key_id,
                        wrapped,
                    )
                return len(rows)

            done: int = await self._run(work)
            total += done
            if done == 0:
                return total

    async def ping(self) -> None:
        async def work(conn: Connection) -> None:
            await conn.fetchval("SELECT 1")

        await self._run(work)

    async def key_usage(self) -> dict[str, int]:
        async def work(conn: Connection) -> dict[str, int]:
            rows = await conn.fetch(
                "SELECT key_id, count(*) AS n FROM evidence WHERE key_id IS NOT NULL GROUP BY key_id"
            )
            return {r["key_id"]: r["n"] for r in rows}

        return await self._run(work)

    async def blocked_sha256(self) -> set[str]:
        """SHA-256 of every upload the gate rejected, quarantined or confirmed, less released ones."""

        async def work(conn: Connection) -> set[str]:
            rows = await conn.fetch(
                "(SELECT sha256 FROM decisions WHERE verdict IN ('reject', 'quarantine') AND sha256 IS NOT NULL"
                " UNION SELECT sha256 FROM evidence WHERE state <> 'released')"
                " EXCEPT (SELECT sha256 FROM evidence WHERE state = 'released'"
                " EXCEPT SELECT sha256 FROM evidence WHERE state IN ('confirmed', 'reported'))"
            )
            return {r["sha256"] for r in rows}

        return await self._run(work)
