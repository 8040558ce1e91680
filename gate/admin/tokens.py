"""Reviewer, admin and service bearer tokens, kept in Postgres (table ``review_tokens``) as SHA-256 hashes only.

``upload-gate admin token add NAME --role reviewer|admin|service`` creates a token, stores its hash and prints the
token once; ``remove`` revokes it at once. Postgres, because every replica must accept the same tokens
and a restart must keep them (they used to be a file in GATE_DATA_DIR: an ``emptyDir`` on Kubernetes,
a different file behind every replica). A tokens file from those days (``GATE_ADMIN_TOKENS``, default
``GATE_DATA_DIR/admin-tokens``) is imported once at start-up and renamed ``*.imported``.

Trust boundary: whoever holds a reviewer token can see quarantined material (blurred) and reveal it; a
service token opens the hash/match/scan API (``gate.api``) and nothing of the review site — it can ask
whether bytes are banked, a reviewer cannot, and neither role implies the other. Tokens are
256 random bits; only their hash is stored, so the table (or a database backup) leaks nothing usable. A
lookup by hash (not a compare loop) means timing reveals nothing about other tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gate.errors import ConfigError
from gate.store.audit import record_audit
from gate.store.pool import Pool

log = logging.getLogger(__name__)

TOKEN_PREFIX = "ugt_"  # noqa: S105 -- a public marker, not a secret
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class Role(StrEnum):
    REVIEWER = "reviewer"  # the queue, previews, reveal, release, confirm, mark reported
    ADMIN = "admin"  # all of the above, plus account takedowns on the PDS and the audit log, and the API
    SERVICE = "service"  # the hash/match/scan API for other services (gate.api), and nothing else


class TokenError(ConfigError, ValueError):
    """A token name or a legacy tokens file line is not acceptable; the message says why."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated person: the token's name (who, in the audit log) and role."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        """Admin may do everything; a reviewer what reviewers do; a service what services do."""
        return self.role is Role.ADMIN or self.role is needed


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_legacy_file(text: str, path: Path) -> list[tuple[str, Role, str]]:
    """``NAME ROLE sha256:HEX [CREATED]`` lines of an old tokens file: (name, role, hash)."""
    out: list[tuple[str, Role, str]] = []
    names: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split()
        if len(parts) < 3 or not parts[2].startswith("sha256:") or len(parts[2]) != 71:
            raise TokenError(f"{path}:{lineno}: expected NAME ROLE sha256:HEX [CREATED]")
        name, role, digest = parts[0], parts[1], parts[2].removeprefix("sha256:").lower()
        if role not in (Role.REVIEWER, Role.ADMIN):  # files predate the service role
            raise TokenError(f"{path}:{lineno}: role must be reviewer or admin, not {role!r}")
        if name in names or not _NAME.match(name) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise TokenError(f"{path}:{lineno}: duplicate or malformed name or hash")
        names.add(name)
        out.append((name, Role(role), digest))
    return out


class TokenStore:
    """The ``review_tokens`` table."""

    def __init__(self, db: Pool) -> None:
        self.db = db

    async def authenticate(self, token: str) -> Principal | None:
        """Who holds ``token``, or None. Raises ``StoreUnavailable`` when Postgres cannot say."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        rows = await self.db.fetch(
            "SELECT name, role FROM review_tokens WHERE token_sha256 = $1", token_hash(token)
        )
        return Principal(rows[0]["name"], Role(rows[0]["role"])) if rows else None

    async def principals(self) -> list[Principal]:
        rows = await self.db.fetch("SELECT name, role FROM review_tokens ORDER BY name")
        return [Principal(r["name"], Role(r["role"])) for r in rows]

    async def add(self, name: str, role: Role, actor: str) -> str:
        """Create a token for ``name``; returns it (the only time it exists outside the holder's hands)."""
        if not _NAME.match(name):
            raise TokenError(f"token name {name!r}: letters, digits and _.@- only, at most 64")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.db.transaction() as conn:
            added = await conn.fetchval(
                "INSERT INTO review_tokens (name, role, token_sha256) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO NOTHING RETURNING name",
                name,
                role.value,
                token_hash(token),
            )
            if added is None:
                raise TokenError(f"a token named {name!r} exists; remove it first")
            await record_audit(conn, actor, "token_added", None, {"name": name, "role": role.value})
        return token

    async def remove(self, name: str, actor: str) -> bool:
        async with self.db.transaction() as conn:
            role = await conn.fetchval("DELETE FROM review_tokens WHERE name = $1 RETURNING role", name)
            if role is not None:
                await record_audit(conn, actor, "token_removed", None, {"name": name, "role": role})
        return role is not None

    async def import_file(self, path: Path) -> int:
        """Move a legacy tokens file's hashes into the table (names already there are kept as they are),
        then rename the file ``*.imported`` so it is not read again; returns how many were added."""
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.error("review tokens file %s not imported: %s", path, exc.strerror or exc)
            return 0
        rows = parse_legacy_file(text, path)
        added = 0
        async with self.db.transaction() as conn:
            for name, role, digest in rows:
                done = await conn.fetchval(
                    "INSERT INTO review_tokens (name, role, token_sha256) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING RETURNING name",
                    name,
                    role.value,
                    digest,
                )
                added += done is not None
            await record_audit(conn, "gate", "tokens_imported", None, {"file": str(path), "added": added})
        target = path.with_name(path.name + ".imported")
        try:
            await asyncio.to_thread(path.rename, target)
        except OSError as exc:
            log.warning(
                "review tokens imported from %s but the file could not be renamed (%s): remove it, or a "
                "token revoked later comes back at the next start",
                path,
                exc.strerror or exc,
            )
            return added
        log.warning(
            "review tokens file %s imported into Postgres (%d added) and renamed %s: tokens live in the "
            "database now (`upload-gate admin token list`)",
            path,
            added,
            target.name,
        )
        return added
