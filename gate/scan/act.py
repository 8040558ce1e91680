"""``ScanActor``: carries out the policy's ``[scan]`` choices for a stored blob a rule blocks.

Rules return intent; this applies it (as ``UploadPipeline`` does for uploads), and reports each action
as an ``ActionTaken`` for the decision row. Only verdicts a *rule* reached act: a built-in choice
(``on_unhashable``, ``on_unscannable``, ``on_matcher_error``) is recorded and nothing more, because a
years-old PDS holds many files no decoder reads, and a scan must not withhold them all on a policy
written for new uploads. The order is withhold (the row itself does it), review (the bytes sealed
while they can still be read), takedown (after which the PDS serves them to nobody, the gate included).
The account stays a reviewer's decision.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from gate.policy.model import Policy
from gate.quarantine.takedowns import TakedownRefused, Takedowns
from gate.record import DecisionRecord
from gate.store.pool import StoreUnavailable
from gate.store.retention import Retention
from gate.store.vault import EvidenceCapped, Vault
from gate.types import ActionTaken, ScanAction

log = logging.getLogger("gate.scan")

ORDER = (ScanAction.WITHHOLD, ScanAction.REVIEW, ScanAction.TAKEDOWN)
Body = Callable[[], Awaitable[bytes]]


def wanted(policy: Policy, record: DecisionRecord) -> tuple[ScanAction, ...]:
    """The actions ``[scan]`` asks for this decision, in the order they are carried out."""
    d = record.decision
    if d is None or policy.scan is None or d.reason != "match":
        return ()
    chosen = policy.scan.actions(d.verdict)
    return tuple(a for a in ORDER if a in chosen)


class ScanActor:
    def __init__(self, vault: Vault | None, takedowns: Takedowns | None, actor: str) -> None:
        self.vault = vault
        self.takedowns = takedowns
        self.actor = actor  # who the audit trail says acted: "gate:scan", "gate:retro"

    async def act(
        self, policy: Policy, record: DecisionRecord, did: str, cid: str, body: Body
    ) -> tuple[ActionTaken, ...]:
        actions = wanted(policy, record)
        if policy.scan is not None and policy.scan.shadow:
            return tuple(ActionTaken(a, "shadow") for a in actions)
        return tuple([await self._one(a, policy, record, did, cid, body) for a in actions])

    async def _one(
        self, action: ScanAction, policy: Policy, record: DecisionRecord, did: str, cid: str, body: Body
    ) -> ActionTaken:
        if action is ScanAction.WITHHOLD:
            return ActionTaken(action, "done")  # getBlob's withheld set reads the decision row
        if action is ScanAction.REVIEW:
            return await self._review(policy, record, body)
        return await self.take_down(record.id, did, cid)

    async def _review(self, policy: Policy, record: DecisionRecord, body: Body) -> ActionTaken:
        if self.vault is None:
            return ActionTaken(ScanAction.REVIEW, "failed", "no evidence store")
        try:
            await self.vault.keep(
                record,
                await body(),
                Retention.of(policy.evidence),
                hourly_cap=policy.evidence.max_held_per_did_per_hour,
            )
        except EvidenceCapped as exc:
            return ActionTaken(ScanAction.REVIEW, "capped", str(exc))
        except StoreUnavailable as exc:
            log.error("evidence for decision %s not stored: %s", record.id, exc)
            return ActionTaken(ScanAction.REVIEW, "failed", str(exc))
        except Exception as exc:  # the bytes could not be fetched (a retro-hunt reads them again)
            log.error("evidence for decision %s not stored: %s", record.id, exc)
            return ActionTaken(ScanAction.REVIEW, "failed", f"{type(exc).__name__}: {exc}"[:300])
        return ActionTaken(ScanAction.REVIEW, "done")

    async def take_down(self, decision_id: str, did: str, cid: str) -> ActionTaken:
        """The blob taken down on the PDS, under the daily cap (also the firehose watcher's takedown);
        "already" when the PDS has it down already (no cap slot used)."""
        if self.takedowns is None:
            return ActionTaken(ScanAction.TAKEDOWN, "refused", "PDS actions are off (no admin password)")
        try:
            before = await self.takedowns.take_down_blob(decision_id, did, cid, self.actor)
        except TakedownRefused as exc:
            result = "capped" if exc.reason == "capped" else "failed" if exc.reason == "failed" else "refused"
            return ActionTaken(ScanAction.TAKEDOWN, result, str(exc))
        if before is not None:  # e.g. by a run that died before it wrote this blob's row
            return ActionTaken(
                ScanAction.TAKEDOWN, "already", f"taken down on the PDS before (ref {before[:200]!r})"
            )
        return ActionTaken(ScanAction.TAKEDOWN, "done")
