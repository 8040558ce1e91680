"""``Signer``: short HMAC tokens for the review page — CSRF tokens and time-limited reveal links.

Every token is bound to who it was made for: a reveal link copied to someone else does not open for
them, and a CSRF token is tied to one login. The key is shared by every replica and kept across restarts
(``shared_key``: one random 256-bit key in Postgres, made by whichever process needs it first), so a form
served by one replica can be posted to another behind a Service, and a reveal link made a moment ago
still opens after a rolling restart. Keeping it in the database gives a reader of the database nothing
on its own: a CSRF token only counts alongside the login token it is bound to, and a reveal link only
for the reviewer (the bearer of that reviewer's token) it was made for.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable

from gate.store.pool import Pool

KEY_NAME = "signing"


async def shared_key(db: Pool) -> bytes:
    """The signing key every replica uses: created once (a race is settled by the primary key)."""
    await db.execute(
        "INSERT INTO review_keys (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        KEY_NAME,
        secrets.token_bytes(32),
    )
    key: bytes = await db.fetchval("SELECT secret FROM review_keys WHERE name = $1", KEY_NAME)
    return key


class Signer:
    def __init__(
        self, key: bytes | None = None, *, load: Callable[[], Awaitable[bytes]] | None = None
    ) -> None:
        """A fixed ``key``, a ``load``-ed one (fetched on first use, kept), or else a random one."""
        self._key = key if key is not None or load is not None else secrets.token_bytes(32)
        self._load = load
        self._lock = asyncio.Lock()

    async def ready(self) -> None:
        """Make sure the key is loaded; raises what ``load`` raises (the caller answers 503)."""
        if self._key is not None:
            return
        async with self._lock:
            if self._key is None and self._load is not None:
                self._key = await self._load()

    def _mac(self, *parts: str) -> str:
        if self._key is None:
            raise RuntimeError("Signer.ready() has not run")
        return hmac.new(self._key, "|".join(parts).encode(), hashlib.sha256).hexdigest()

    def csrf(self, session_token: str) -> str:
        return self._mac("csrf", hashlib.sha256(session_token.encode()).hexdigest())

    def check_csrf(self, session_token: str, presented: str) -> bool:
        return hmac.compare_digest(self.csrf(session_token), presented)

    def reveal(self, actor: str, item_id: str, ttl: float, now: float | None = None) -> tuple[str, int]:
        """A link token for ``actor`` to see ``item_id``'s original until the returned unix time."""
        expires = int((now if now is not None else time.time()) + ttl)
        return f"{expires}.{self._mac('reveal', actor, item_id, str(expires))}", expires

    def check_reveal(self, token: str, actor: str, item_id: str, now: float | None = None) -> bool:
        expires, _, mac = token.partition(".")
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(self._mac("reveal", actor, item_id, expires), mac)
