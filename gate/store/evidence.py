"""``Evidence``: the parts that hold blocked uploads, on the process's one pool.

    evidence = Evidence.on(pool, keyring)
    await evidence.vault.keep(record, body, retention, hourly_cap=None)  # the pipeline: seal and insert
    await evidence.vault.decrypt(decision_id, actor, purpose) -> bytes    # audited as purpose
    await evidence.items.list_items(state) / get(decision_id)             # metadata only, never bytes
    await evidence.items.release / confirm / mark_reported / set_legal_hold / mark_viewed
    await evidence.audit.record(actor, action, subject, detail) / trail(subject)

and, beside them, ``gate.store.purge`` (expired bytes deleted), ``gate.store.rewrap`` (key rotation),
``gate.store.blocked`` (what getBlob withholds). State changes, decrypts and purges write their own
``audit`` row in the same transaction, so none can happen unrecorded; callers audit only their own
accesses (list, preview page views, ...). Postgres failing raises ``StoreUnavailable``; an unknown id
``EvidenceNotFound``; a forbidden change ``InvalidTransition``; a ciphertext that does not open
``EvidenceUnreadable``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gate.quarantine.keys import Keyring
from gate.store.audit import Audit
from gate.store.items import Items
from gate.store.pool import Pool
from gate.store.vault import Vault


@dataclass(frozen=True, slots=True)
class Evidence:
    vault: Vault
    items: Items
    audit: Audit

    @classmethod
    def on(cls, db: Pool, keyring: Keyring | None) -> Evidence:
        return cls(Vault(db, keyring), Items(db), Audit(db))

    @property
    def db(self) -> Pool:
        return self.vault.db
