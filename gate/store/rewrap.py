"""Key rotation's database half: which key seals how many items, and re-wrapping items onto the active
key (a 32-byte data key each; the upload bytes are never decrypted to rotate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gate.quarantine.keys import Keyring

if TYPE_CHECKING:
    from gate.store.pool import Pool

BATCH = 200  # items per transaction: short ones, so uploads are never held up behind a rotation


async def key_usage(db: Pool) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT key_id, count(*) AS n FROM evidence WHERE key_id IS NOT NULL GROUP BY key_id"
    )
    return {r["key_id"]: r["n"] for r in rows}


async def to_rewrap(db: Pool, keyring: Keyring) -> int:
    """How many items are sealed under a key other than the active one."""
    found: int = await db.fetchval(
        "SELECT count(*) FROM evidence WHERE ciphertext IS NOT NULL AND key_id <> $1", keyring.active.id
    )
    return found


async def rewrap(db: Pool, keyring: Keyring, progress: Callable[[int], None] | None = None) -> int:
    """Re-wrap every item not under the active key; returns how many were. ``progress`` hears the
    count so far after each batch."""
    total = 0
    while True:
        async with db.transaction() as conn:
            rows = await conn.fetch(
                "SELECT decision_id, key_id, wrapped_key FROM evidence WHERE ciphertext IS NOT NULL"
                " AND key_id <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
                keyring.active.id,
                BATCH,
            )
            for r in rows:
                key_id, wrapped = keyring.rewrap(r["key_id"], r["wrapped_key"], str(r["decision_id"]))
                await conn.execute(
                    "UPDATE evidence SET key_id = $2, wrapped_key = $3 WHERE decision_id = $1",
                    r["decision_id"],
                    key_id,
                    wrapped,
                )
        total += len(rows)
        if not rows:
            return total
        if progress is not None:
            progress(total)
