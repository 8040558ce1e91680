"""``OwnTakedowns``: the policy's ``[firehose] takedown``: a blob a rule rejects, stored on the gate's
own PDS, is taken down there by the watcher (repoBlobRef, as a scan's ``takedown``: under the daily cap,
audited as ``gate:firehose``).

Only rejects a *rule* reached act (a quarantine waits for a reviewer; a built-in choice or a shadow rule
records only), and only on the gate's own PDS: the watcher has no say over anyone else's, where labels and
reports are its voice. A blob is judged once per CID, but every repo that posts it is its own subject on
the PDS: a later post of an already-judged CID by another repo is taken down too, without a new row
(the audit trail names the first decision). Each (repo, CID) is tried once per process, claimed before
the PDS is asked (a fresh judgement's takedown is not tried again by the same post, nor twice by two
posts at once); one that failed is audited (``takedown_failed``) and left to a reviewer. Across processes
and restarts the PDS itself says what is down already (``Takedowns.take_down_blob`` asks it first): a
blob already taken down is ``already``, with no second audited takedown or cap slot.
"""

from __future__ import annotations

import logging

from yarl import URL

from gate.firehose.identity import Identities, Unresolvable
from gate.policy.model import Policy
from gate.record import DecisionRecord
from gate.scan.act import ScanActor
from gate.ttl_cache import TtlCache
from gate.types import ActionTaken, Verdict

log = logging.getLogger("gate.firehose")

DONE_SIZE = 100_000
DONE_TTL = 86_400.0


class OwnTakedowns:
    def __init__(self, identities: Identities, actor: ScanActor) -> None:
        self.identities = identities
        self.actor = actor
        self._done: TtlCache[tuple[str, str], bool] = TtlCache(DONE_SIZE, DONE_TTL)

    async def judged(
        self, policy: Policy, record: DecisionRecord, repo: str, pds: URL
    ) -> tuple[ActionTaken, ...]:
        """For a blob judged just now (fetched from ``pds``): the takedown, for its decision row."""
        d = record.decision
        cid = record.hashes.cid if record.hashes is not None else None
        if (
            not policy.firehose.takedown
            or d is None
            or cid is None
            or d.verdict is not Verdict.REJECT
            or d.reason != "match"
            or not self.identities.is_own(pds)
        ):
            return ()
        return (await self._take_down(record.id, repo, cid),)

    async def seen_again(self, policy: Policy, repo: str, cid: str, decision_id: str, verdict: str) -> None:
        """For a CID judged earlier, posted by ``repo``: taken down in that repo too, when it is ours."""
        if not policy.firehose.takedown or verdict != Verdict.REJECT.value or self._done.get((repo, cid)):
            return
        try:
            pds = await self.identities.pds_of(repo)
        except Unresolvable:
            return  # not fetched from anywhere either: nothing the watcher can say of where it is
        if not self.identities.is_own(pds):
            return
        taken = await self._take_down(decision_id, repo, cid)
        log.warning(
            "blob %s of %s, judged before (decision %s): takedown %s", cid, repo, decision_id, taken.result
        )

    async def _take_down(self, decision_id: str, repo: str, cid: str) -> ActionTaken:
        self._done.put((repo, cid), True)
        return await self.actor.take_down(decision_id, repo, cid)
