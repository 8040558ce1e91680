"""``Review``: what a reviewer can do to held items — each access audited before its answer exists.

Shared by the JSON API (``review_api``) and the HTML page (``review_page``), so both record exactly the
same trail. Audit rows: ``list``, ``item`` (details page), ``preview`` (the blurred derivative: written
by ``Vault.decrypt``), ``reveal_granted`` (a signed link was made), ``reveal`` + ``viewed`` (the
original bytes went to a browser; the item is marked as seen by a human), ``released``, ``confirmed``,
``reported``, ``legal_hold`` / ``legal_hold_lifted`` (admins), and ``takedown*`` for account actions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from gate import metrics
from gate.admin.preview import blurred_preview
from gate.admin.signing import Signer
from gate.hashing.sniff import sniff
from gate.notify.event import (
    REVIEW_CONFIRMED,
    REVIEW_RELEASED,
    REVIEW_REPORTED,
    REVIEW_TAKEDOWN,
    review_event,
)
from gate.notify.webhook import Notifier
from gate.quarantine.allowlist import Allowlist
from gate.quarantine.takedowns import TakedownRefused, Takedowns, Target
from gate.store.evidence import Evidence
from gate.store.item import EvidenceItem, EvidenceState
from gate.store.retention import Retention
from gate.store.transitions import EvidenceNotFound, InvalidTransition

# Media types a browser may render inline on reveal; anything else is offered as a download only.
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


@dataclass(frozen=True, slots=True)
class Revealed:
    body: bytes
    media_type: str


@dataclass(frozen=True, slots=True)
class ConfirmOutcome:
    item: EvidenceItem
    takedown: str | None  # None: not asked; "applied"; or why not (unverified, capped, disabled, failed)
    message: str | None = None


class Review:
    def __init__(
        self,
        evidence: Evidence,
        allowlist: Allowlist,
        takedowns: Takedowns | None,
        notifier: Notifier,
        *,
        reveal_seconds: float = 60.0,
        max_pixels: int = 89_478_485,
        retention: Callable[[], Retention] = Retention,
        signer: Signer | None = None,
    ) -> None:
        self.evidence = evidence
        self.allowlist = allowlist
        self.takedowns = takedowns
        self.notifier = notifier
        self.reveal_seconds = reveal_seconds
        self.max_pixels = max_pixels
        self.retention = retention  # the deadlines in force now (the policy's, re-read at each report)
        self.signer = signer or Signer()

    async def queue(self, actor: str, state: EvidenceState | None, limit: int = 100) -> list[EvidenceItem]:
        items = await self.evidence.items.list_items(state, limit=limit)
        metrics.REVIEW_ACTIONS.labels("list").inc()
        await self.evidence.audit.record(
            actor, "list", None, {"state": state.value if state else None, "shown": len(items)}
        )
        return items

    async def item(self, actor: str, item_id: str) -> EvidenceItem:
        item = await self._get(item_id)
        await self.evidence.audit.record(actor, "item", item.decision_id, {})
        return item

    async def preview(self, actor: str, item_id: str) -> bytes | None:
        """The blurred greyscale JPEG (None when there is nothing to show or no image to blur)."""
        item = await self._get(item_id)
        if not item.has_bytes:
            return None
        body = await self.evidence.vault.decrypt(item.decision_id, actor, "preview")
        metrics.REVIEW_ACTIONS.labels("preview").inc()
        return await asyncio.to_thread(blurred_preview, body, self.max_pixels)

    async def grant_reveal(self, actor: str, item_id: str) -> tuple[str, int]:
        item = await self._get(item_id)
        if not item.has_bytes:
            raise EvidenceNotFound(item_id)
        await self.signer.ready()
        token, expires = self.signer.reveal(actor, item.decision_id, self.reveal_seconds)
        await self.evidence.audit.record(actor, "reveal_granted", item.decision_id, {"expires": expires})
        metrics.REVIEW_ACTIONS.labels("reveal").inc()
        return token, expires

    async def open_reveal(self, actor: str, item_id: str, token: str) -> Revealed | None:
        """The original bytes if ``token`` is ``actor``'s unexpired link for this item, else None."""
        item = await self._get(item_id)
        await self.signer.ready()
        if not self.signer.check_reveal(token, actor, item.decision_id):
            await self.evidence.audit.record(
                actor, "reveal_denied", item.decision_id, {"why": "expired or not yours"}
            )
            return None
        body = await self.evidence.vault.decrypt(item.decision_id, actor, "reveal")
        await self.evidence.items.mark_viewed(item.decision_id, actor)
        return Revealed(body, sniff(body))

    async def release(self, actor: str, item_id: str) -> EvidenceItem:
        """A false positive: allowlisted first (so the retry passes), then the evidence is deleted."""
        item = await self._get(item_id)
        if item.state not in (EvidenceState.HELD, EvidenceState.CONFIRMED):
            raise InvalidTransition(f"a {item.state.value} item cannot be released")
        if item.legal_hold:
            raise InvalidTransition("the item is under legal hold")
        bank = await self.allowlist.add_sha256(item.sha256, item.decision_id, actor)
        released = await self.evidence.items.release(item.decision_id, actor)
        metrics.REVIEW_ACTIONS.labels("release").inc()
        await self.evidence.audit.record(
            actor, "allowlisted", item.decision_id, {"bank": bank, "sha256": item.sha256}
        )
        self.notifier.submit(
            review_event(
                REVIEW_RELEASED, item.decision_id, actor, sha256=item.sha256, cid=item.cid, bank=bank
            )
        )
        return released

    async def confirm(self, actor: str, item_id: str, *, takedown: bool = False) -> ConfirmOutcome:
        item = await self.evidence.items.confirm(item_id, actor)
        metrics.REVIEW_ACTIONS.labels("confirm").inc()
        self.notifier.submit(
            review_event(
                REVIEW_CONFIRMED, item.decision_id, actor, sha256=item.sha256, cid=item.cid, rule=item.rule
            )
        )
        if not takedown:
            return ConfirmOutcome(item, None)
        if self.takedowns is None:
            return ConfirmOutcome(item, "disabled", "PDS actions are not configured")
        target = Target(item.decision_id, item.verified_did, item.verified_did is not None)
        try:
            await self.takedowns.take_down(target, actor)
        except TakedownRefused as exc:
            return ConfirmOutcome(item, exc.reason, str(exc))
        self.notifier.submit(review_event(REVIEW_TAKEDOWN, item.decision_id, actor, did=item.verified_did))
        return ConfirmOutcome(item, "applied", f"account {item.verified_did} taken down on the PDS")

    async def mark_reported(self, actor: str, item_id: str, report_id: str) -> EvidenceItem:
        report_id = report_id.strip()
        if not report_id or len(report_id) > 100 or not report_id.isprintable():
            raise InvalidTransition("a CyberTipline report id is required (up to 100 characters)")
        item = await self.evidence.items.mark_reported(item_id, actor, report_id, self.retention())
        metrics.REVIEW_ACTIONS.labels("reported").inc()
        self.notifier.submit(
            review_event(
                REVIEW_REPORTED,
                item.decision_id,
                actor,
                sha256=item.sha256,
                cid=item.cid,
                report_id=report_id,
            )
        )
        return item

    async def place_legal_hold(self, actor: str, item_id: str, reason: str) -> EvidenceItem:
        """Admins only (the routes check): the bytes stay, whatever the deadline, until it is lifted."""
        item = await self.evidence.items.set_legal_hold(item_id, actor, True, reason)
        metrics.REVIEW_ACTIONS.labels("legal_hold").inc()
        return item

    async def lift_legal_hold(self, actor: str, item_id: str, reason: str | None = None) -> EvidenceItem:
        item = await self.evidence.items.set_legal_hold(item_id, actor, False, reason)
        metrics.REVIEW_ACTIONS.labels("legal_hold_lifted").inc()
        return item

    async def _get(self, item_id: str) -> EvidenceItem:
        item = await self.evidence.items.get(item_id)
        if item is None:
            raise EvidenceNotFound(item_id)
        return item
