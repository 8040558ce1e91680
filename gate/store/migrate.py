"""Versioned SQL migrations (``gate/store/migrations/NNN_name.sql``), applied under an advisory lock.

Several gate replicas may start at once against one database: each takes the same transaction-level
advisory lock before looking at ``schema_migrations``, so exactly one applies a pending migration and the
others then see it applied. A migration and its bookkeeping row commit together or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from gate.errors import Unavailable

if TYPE_CHECKING:
    from gate.store.pool import Connection

log = logging.getLogger(__name__)

# Arbitrary but fixed: the advisory-lock key every gate replica agrees on ("upload-gate migrate").
LOCK_KEY = 0x75706C6F_61646D67
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class MigrationError(Unavailable):
    """The database and the shipped migrations disagree; never guessed around."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def shipped_migrations() -> list[Migration]:
    """The migrations packaged with this gate, in version order."""
    out: list[Migration] = []
    for entry in resources.files("gate.store.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    out.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return out


async def migrate(conn: Connection) -> list[Migration]:
    """Apply pending migrations on ``conn`` (an asyncpg connection); returns the ones applied here."""
    applied_now: list[Migration] = []
    async with conn.transaction():
        # Taken before anything else, including CREATE TABLE IF NOT EXISTS, which is not race-safe.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {r["version"]: r for r in rows}
        shipped = shipped_migrations()
        for mig in shipped:
            row = done.get(mig.version)
            if row is not None:
                if row["checksum"] != mig.checksum:
                    raise MigrationError(
                        f"migration {mig.version:03d}_{mig.name} was changed after it was applied "
                        "(checksum differs); add a new migration instead of editing an old one"
                    )
                continue
            log.debug("applying migration %03d_%s", mig.version, mig.name)
            await conn.execute(mig.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                mig.version,
                mig.name,
                mig.checksum,
            )
            applied_now.append(mig)
        unknown = sorted(set(done) - {m.version for m in shipped})
        if unknown:
            # A newer gate migrated this database; older code keeps working on the columns it knows.
            log.warning("database has migrations this gate does not ship: %s", unknown)
    if applied_now:
        # One line however many there are: a fresh database is not news worth a line per file.
        log.info("schema migrated: %s", ", ".join(f"{m.version:03d}_{m.name}" for m in applied_now))
    return applied_now


async def schema_ready(conn: Connection) -> bool:
    """True when every shipped migration is applied (readers use this to give a clear error)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return False
    versions = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return {m.version for m in shipped_migrations()} <= versions
