"""``Allowlist``: reviewed false positives — the SHA-256 of every released upload — kept in Postgres and
matched as rows of the policy's allowlist bank.

Why a table, not the bank file: the banks directory is read-only in every shipped deployment (a
ConfigMap, a ``:ro`` mount, files the image's user does not own), and a release made on one replica must
count on every other. Why still an allowlist *bank*: the policy already says what an allowlist means
(an exact hit forwards, whatever else matched) and ``evaluate`` stays pure. A released hash comes back
as a ``local`` match in the bank it was released into (the policy's first ``allowlist_banks`` at that
time), exactly as a row of that bank's file would; a policy that stops listing the bank stops honouring
its rows, as with the file.

Each gate process keeps the rows in memory (a dict lookup per upload, never a query) and re-reads them
when the table changes, checked every ``GATE_RELOAD_INTERVAL``; the process that releases re-reads at
once, so the uploader's retry passes there without waiting. While Postgres is down the last rows stay
in force.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from gate.errors import Refusal
from gate.matching.matcher import Matcher
from gate.policy.plan import Plan
from gate.policy.reload import PolicyHolder
from gate.signals import SignalType
from gate.store.audit import record_audit
from gate.store.pool import Pool, StoreUnavailable
from gate.types import Hashes, Match, MatchResult
from gate.watch import every

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COLUMNS = "sha256, bank, decision_id, added_by, added_at"


class NoAllowlistBank(Refusal):
    """A release needs somewhere to go: the policy names no allowlist bank."""


@dataclass(frozen=True, slots=True)
class Allowed:
    """One released (or hand-added) hash."""

    sha256: str
    bank: str
    decision_id: str | None
    added_by: str
    added_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Allowed:
        decision = row["decision_id"]
        return cls(
            row["sha256"], row["bank"], str(decision) if decision else None, row["added_by"], row["added_at"]
        )

    def match(self) -> Match:
        when = self.added_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        label = (
            f"released {self.decision_id} by {self.added_by} {when}"
            if self.decision_id
            else (f"added by {self.added_by} {when}")
        )
        return Match(
            "local", self.bank, SignalType.SHA256, None, f"allowlist:{self.sha256[:16]}", label, self.sha256
        )

    def to_json(self) -> dict[str, str | None]:
        return {
            "sha256": self.sha256,
            "bank": self.bank,
            "decision_id": self.decision_id,
            "added_by": self.added_by,
            "added_at": self.added_at.isoformat(),
        }


class Allowlist:
    """The Matcher over the ``allowlist`` table, and the one place rows are added or removed."""

    name = "allowlist"

    def __init__(self, db: Pool, policy: PolicyHolder | None = None) -> None:
        self.db = db
        self._policy = policy
        self._rows: dict[str, Allowed] = {}
        self._signature: tuple[int, int] | None = None
        self._lock = asyncio.Lock()

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the rows now if Postgres answers; if not, the watcher keeps trying."""
        try:
            await self.refresh()
        except StoreUnavailable as exc:
            log.error("allowlist not loaded yet (released hashes are not honoured until it is): %s", exc)

    # ---- the matcher -----------------------------------------------------------------------------

    def version(self) -> str:
        count, total = self._signature or (0, 0)
        return f"{count}.{total}"

    async def match(self, hashes: Hashes, plan: Plan) -> MatchResult:
        row = self._rows.get(hashes.sha256)
        # Only while its bank is an allowlist: a policy that drops the bank drops its rows, and a row
        # must never become a hit that a blocking rule over "every local bank" could select.
        if row is None or row.bank not in plan.policy.allowlist_banks:
            return MatchResult()
        return MatchResult(matches=(row.match(),))

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._rows

    async def refresh(self) -> bool:
        """Re-read the rows if the table changed; True when it did."""
        async with self._lock:
            row = await self.db.fetchrow("SELECT count(*) AS n, coalesce(sum(id), 0) AS s FROM allowlist")
            assert row is not None  # an aggregate always answers one row
            signature = (int(row["n"]), int(row["s"]))
            if signature == self._signature:
                return False
            rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM allowlist")  # noqa: S608 - constant columns
            first, self._signature = self._signature is None, signature
            self._rows = {r["sha256"]: Allowed.from_row(r) for r in rows}
        # A change is news; an empty table at start-up is not.
        log.log(
            logging.DEBUG if first and not self._rows else logging.INFO,
            "allowlist: %d reviewed hash(es) in force",
            len(self._rows),
        )
        return True

    async def watch(self, interval: float) -> None:
        """Poll for rows added or removed elsewhere (another replica, the CLI) until cancelled."""

        async def step() -> None:
            try:
                await self.refresh()
            except StoreUnavailable as exc:
                log.warning("allowlist not re-read, keeping %d row(s): %s", len(self._rows), exc)

        await every(interval, step, what="allowlist watch")

    # ---- changes ---------------------------------------------------------------------------------

    def bank(self) -> str:
        names = sorted(self._policy.current.allowlist_banks) if self._policy is not None else []
        if not names:
            raise NoAllowlistBank(
                'the policy has no allowlist_banks: add one (e.g. allowlist_banks = ["allowlist"]) '
                "so a released upload can pass on retry"
            )
        return names[0]

    async def add_sha256(self, sha256: str, decision_id: str | None, actor: str) -> str:
        """Allowlist ``sha256`` in the policy's first allowlist bank (kept if already there); returns
        the bank it counts in. In force in this process when this returns."""
        if not _SHA256.match(sha256):
            raise ValueError("not a lowercase hex SHA-256")
        bank = self.bank()
        kept = await self.db.fetchval(
            "INSERT INTO allowlist (sha256, bank, decision_id, added_by) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256 RETURNING bank",
            sha256,
            bank,
            decision_id,
            actor,
        )
        await self.refresh()
        return str(kept)

    async def remove(self, sha256: str, actor: str) -> Allowed | None:
        """Stop allowlisting ``sha256`` (its next upload is judged again); audited with the row."""
        removed = None
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                f"DELETE FROM allowlist WHERE sha256 = $1 RETURNING {_COLUMNS}",  # noqa: S608
                sha256.lower(),
            )
            if row is not None:
                removed = Allowed.from_row(row)
                await record_audit(conn, actor, "allowlist_removed", removed.decision_id, removed.to_json())
        await self.refresh()
        return removed

    async def rows(self) -> list[Allowed]:
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM allowlist ORDER BY id")  # noqa: S608
        return [Allowed.from_row(r) for r in rows]


if TYPE_CHECKING:  # Allowlist satisfies the Matcher protocol (checked by mypy, free at run time)
    _matcher: Matcher = Allowlist(Pool(""))
