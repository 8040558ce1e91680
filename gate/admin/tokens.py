"""Reviewer and admin bearer tokens: an operator-managed file of SHA-256 hashes, never the tokens.

File format, one token per line (``#`` comments allowed)::

    NAME ROLE sha256:HEX CREATED

``upload-gate admin token add NAME --role reviewer`` creates a token, appends its hash and prints the
token once. The file is re-read when it changes, so adding or removing a token needs no restart.

Trust boundary: whoever holds a token can see quarantined material (blurred) and reveal it. Tokens
are 256 random bits; only their hash is stored, so the file leaks nothing usable. A hash lookup
(not a compare loop) means timing reveals nothing about other tokens.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

TOKEN_PREFIX = "ugt_"  # noqa: S105 -- a public marker, not a secret
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class Role(StrEnum):
    REVIEWER = "reviewer"  # the queue, previews, reveal, release, confirm, mark reported
    ADMIN = "admin"  # all of the above, plus account takedowns on the PDS and the audit log


class TokenFileError(ValueError):
    """The tokens file is unreadable or has a malformed line; the message names the line."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated person: the token's name (who, in the audit log) and role."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return self.role is Role.ADMIN or needed is Role.REVIEWER


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _parse(text: str, path: Path) -> dict[str, Principal]:
    by_hash: dict[str, Principal] = {}
    names: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split()
        if len(parts) < 3 or not parts[2].startswith("sha256:") or len(parts[2]) != 71:
            raise TokenFileError(f"{path}:{lineno}: expected NAME ROLE sha256:HEX [CREATED]")
        name, role, digest = parts[0], parts[1], parts[2].removeprefix("sha256:")
        if role not in Role.__members__.values():
            raise TokenFileError(f"{path}:{lineno}: role must be reviewer or admin, not {role!r}")
        if name in names:
            raise TokenFileError(f"{path}:{lineno}: duplicate token name {name!r}")
        names.add(name)
        by_hash[digest.lower()] = Principal(name, Role(role))
    return by_hash


class TokenFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, Principal] = {}

    def _refresh(self) -> None:
        """Re-read when the file changed. A missing file means no tokens (nobody gets in); a broken one
        also means nobody gets in — never a stale or partial set of tokens."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._by_hash = None, {}
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._by_hash = _parse(self.path.read_text(encoding="utf-8"), self.path)
        except (OSError, TokenFileError):
            self._by_hash = {}
            raise

    def principals(self) -> list[Principal]:
        self._refresh()
        return sorted(self._by_hash.values(), key=lambda p: p.name)

    def authenticate(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        self._refresh()
        return self._by_hash.get(token_hash(token))

    def add(self, name: str, role: Role) -> str:
        """Create a token for ``name``; returns it (the only time it exists outside the holder's hands)."""
        if not _NAME.match(name):
            raise TokenFileError(f"token name {name!r}: letters, digits and _.@- only, at most 64")
        if any(p.name == name for p in self.principals()):
            raise TokenFileError(f"a token named {name!r} exists; remove it first")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0600: hashes are not secrets, but the file says who may review; keep it the operator's.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(f"{name} {role.value} sha256:{token_hash(token)} {created}\n")
        return token

    def remove(self, name: str) -> bool:
        self._refresh()
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True) if self.path.exists() else []
        kept = [ln for ln in lines if ln.split()[:1] != [name]]
        if len(kept) == len(lines):
            return False
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(kept)
        tmp.replace(self.path)
        return True
