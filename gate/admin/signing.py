"""``Signer``: short HMAC tokens for the review page — CSRF tokens and time-limited reveal links.

The key is random per process (reveal links and CSRF tokens die with a restart, which is what a reviewer
expects of a "just now" link). Every token is bound to who it was made for: a reveal link copied to
someone else does not open for them, and a CSRF token is tied to one login.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time


class Signer:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _mac(self, *parts: str) -> str:
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
