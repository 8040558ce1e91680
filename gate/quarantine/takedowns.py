"""``Takedowns``: account takedowns on the PDS behind two guards — a verified DID and a daily cap.

Rules return intent; this is the step that applies the destructive part, so the guards live here and
nowhere else (indigo automod's pattern). The cap counts today's takedowns (UTC day, across every gate
replica) from the ``audit`` table, under an advisory lock, so two reviewers clicking at once cannot
both take the last slot. A takedown the PDS refused gives its slot back.

A blob is taken down once. A scan, retro-hunt or firehose watcher that dies between the takedown and its
decision row judges the blob again next time and asks again; the PDS itself is the one record that
survives that gap, so before acting the blob's status is asked of it (getSubjectStatus). One already
taken down (by the gate or by anyone with the admin password) is audited ``takedown_already``, uses no
slot, and the PDS's own ref is left as it is. A PDS that cannot say does not stop the takedown: the
takedown's own call then says whether the PDS is there (``takedown_failed``, its slot given back, as
ever), and re-applying a takedown changes nothing on the PDS but its ref — the price of not knowing is at
most a second audit row and slot, where the price of skipping would be a banned blob left up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from gate import metrics
from gate.errors import Refusal
from gate.pds_admin import PdsActionError, PdsAdmin
from gate.store.audit import Audit, record_audit
from gate.store.pool import Pool

log = logging.getLogger(__name__)

# Fixed advisory-lock key for the cap ("takedown").
CAP_LOCK_KEY = 0x74616B65_646F776E

_TODAY = (
    "SELECT count(*) FILTER (WHERE action = 'takedown') - count(*) FILTER (WHERE action = 'takedown_failed')"
    " FROM audit WHERE action IN ('takedown', 'takedown_failed')"
    " AND at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
)


class TakedownRefused(Refusal):
    """Not taken down; ``reason`` is bounded (unverified, capped, disabled, failed), the message human."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    """Who to take down, as the review step knows it."""

    decision_id: str
    did: str | None  # the verified DID; None when only claimed
    verified: bool


class Takedowns:
    def __init__(self, db: Pool, pds: PdsAdmin | None, daily_cap: int) -> None:
        self._db = db
        self._pds = pds
        self.daily_cap = daily_cap
        self._audit = Audit(db)

    async def used_today(self) -> int:
        return int(await self._db.fetchval(_TODAY))

    async def take_down(self, target: Target, actor: str) -> None:
        """Take the uploader's account down on the PDS, or raise TakedownRefused saying why not."""
        detail: dict[str, Any] = {"did": target.did}
        if not target.verified or target.did is None:
            # A claimed DID is whatever the uploader wrote into a token: acting on it would let anyone
            # get someone else's account taken down.
            await self._refuse(target, actor, detail, "unverified", "the uploader's DID was never verified")
        await self._apply(
            target, actor, detail, lambda pds, ref: pds.take_down_account(target.did or "", ref)
        )

    async def take_down_blob(self, decision_id: str, did: str, cid: str, actor: str) -> str | None:
        """Take one stored blob down on the PDS (a scan's, retro-hunt's or firehose watcher's ``takedown``),
        under the same daily cap and audit as account takedowns; TakedownRefused says why not. ``did`` is
        the repo the PDS itself lists the blob in, not a token's claim. None: taken down now; else the
        blob was taken down already and nothing was done: the ref the PDS keeps for it ("" if none)."""
        detail: dict[str, Any] = {"did": did, "cid": cid, "subject": "blob"}
        target = Target(decision_id, did, True)
        if self._pds is not None:
            try:
                ref = await self._pds.blob_takedown(did, cid)
            except PdsActionError as exc:
                log.warning(
                    "blob %s of %s: the PDS cannot say if it is taken down (%s); taking it down",
                    cid,
                    did,
                    exc,
                )
                detail["status"] = f"unknown: {exc}"
            else:
                if ref is not None:
                    await self._audit.record(
                        actor, "takedown_already", decision_id, {**detail, "ref": ref[:200]}
                    )
                    metrics.TAKEDOWNS.labels("already").inc()
                    return ref
        await self._apply(target, actor, detail, lambda pds, ref: pds.take_down_blob(did, cid, ref))
        return None

    async def _apply(
        self,
        target: Target,
        actor: str,
        detail: dict[str, Any],
        call: Callable[[PdsAdmin, str], Awaitable[None]],
    ) -> None:
        if self._pds is None:
            await self._refuse(target, actor, detail, "disabled", "PDS actions are off (no admin password)")
        async with self._db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", CAP_LOCK_KEY)
            capped = int(await conn.fetchval(_TODAY)) >= self.daily_cap
            if not capped:
                # The slot is taken (and audited) before the PDS is called: a crash mid-call keeps it.
                await record_audit(conn, actor, "takedown", target.decision_id, detail)
        if capped:
            await self._audit.record(
                actor, "takedown_capped", target.decision_id, {**detail, "cap": self.daily_cap}
            )
            metrics.TAKEDOWNS.labels("capped").inc()
            raise TakedownRefused(
                "capped", f"the daily takedown cap ({self.daily_cap}) is reached; try again tomorrow"
            )
        try:
            await call(self._pds, f"upload-gate:{target.decision_id}")
        except PdsActionError as exc:
            await self._audit.record(
                actor, "takedown_failed", target.decision_id, {**detail, "error": str(exc)}
            )
            metrics.TAKEDOWNS.labels("failed").inc()
            raise TakedownRefused("failed", str(exc)) from None
        metrics.TAKEDOWNS.labels("applied").inc()

    async def _refuse(
        self, target: Target, actor: str, detail: dict[str, Any], reason: str, message: str
    ) -> NoReturn:
        await self._audit.record(actor, "takedown_refused", target.decision_id, {**detail, "reason": reason})
        metrics.TAKEDOWNS.labels("refused").inc()
        raise TakedownRefused(reason, message)
