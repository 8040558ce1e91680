"""``one_hunt``: one retro-hunt at a time across every process on the gate's Postgres.

``serve`` and ``watch`` both reload the banks and both hunt, and so does every replica on the same
Postgres, and ``upload-gate scan retro`` on demand. Hunting the same change at once, each would see no
``retro`` decision for a hit yet and re-judge it: two decisions, two evidence items, two takedowns (two
slots of the daily cap) and two webhooks for one blob. Under this lock they hunt in turn, and a later
hunt finds the hits already re-judged (``RetroHunt.rejudge``) and records nothing more, as long as each
hunt's rows are in Postgres before it lets go (the hunts write them directly, not through the decision
log's queue).

A later hunt *waits* rather than skips: its bank change need not be the one being hunted (another
replica may have reloaded a different file, or at another moment), so skipping could leave a new entry
never matched; waiting costs its matching again and nothing else. The lock is Postgres's session-level
advisory lock, on a connection of its own held for the hunt: a process that dies mid-hunt loses its
connection and with it the lock, so the next hunt does not wait for ever (what the dead one re-judged is
recorded, and the rest is found again).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from gate.store.pool import DB_ERRORS, Pool, StoreUnavailable

log = logging.getLogger("gate.scan")

# Arbitrary but fixed: the advisory-lock key every process hunting on one Postgres agrees on ("retrohun").
LOCK_KEY = 0x72657472_6F68756E


@contextlib.asynccontextmanager
async def one_hunt(db: Pool, what: str) -> AsyncIterator[None]:
    """Hold the retro-hunt lock for the block, waiting (and saying so once) while another process holds
    it. ``StoreUnavailable`` when Postgres cannot answer: no hunt without it anyway."""
    async with db.own_connection() as conn:
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                log.info("%s waits: another process is running a retro-hunt on this Postgres", what)
                await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        except DB_ERRORS as exc:
            raise StoreUnavailable(f"the retro-hunt lock: {type(exc).__name__}: {exc}") from exc
        yield  # released when the connection closes (own_connection), however the block ends
