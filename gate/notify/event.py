"""Webhook events: what an operator's chat or moderation tool is told. Ids, hashes and reasons only.

Trust boundary: events leave the host. They never carry upload bytes, previews, tokens or client IPs —
only what identifies the item (decision id, hashes, CID), why it was held, and who decided what.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gate.record import DecisionRecord
from gate.types import DecisionSource, Verdict

# Event types. Bounded: they are also what receivers route on.
UPLOAD_QUARANTINED = "upload.quarantined"
UPLOAD_REJECTED = "upload.rejected"
# Blobs the PDS already stored, judged by a scan (backfill) or a retro-hunt: the same data, plus what
# the [scan] choices did, the records that use the blob when known and (retro) the decision re-judged.
SCAN_QUARANTINED = "scan.quarantined"
SCAN_REJECTED = "scan.rejected"
RETRO_QUARANTINED = "retro.quarantined"
RETRO_REJECTED = "retro.rejected"
_KINDS = {
    DecisionSource.BACKFILL: (SCAN_QUARANTINED, SCAN_REJECTED),
    DecisionSource.RETRO: (RETRO_QUARANTINED, RETRO_REJECTED),
}
REVIEW_RELEASED = "review.released"
REVIEW_CONFIRMED = "review.confirmed"
REVIEW_REPORTED = "review.reported"
REVIEW_TAKEDOWN = "review.takedown"


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "time": self.time.isoformat(), "data": self.data}


def decision_event(record: DecisionRecord) -> Event | None:
    """The event for a held or rejected upload; None for everything else (forwards, errors)."""
    verdict, h, d = record.verdict, record.hashes, record.decision
    if verdict not in (Verdict.QUARANTINE, Verdict.REJECT) or d is None:
        return None
    held, rejected = _KINDS.get(record.source, (UPLOAD_QUARANTINED, UPLOAD_REJECTED))
    kind = held if verdict is Verdict.QUARANTINE else rejected
    extra: dict[str, Any] = {}
    if record.source in _KINDS:
        extra = {
            "actions": [a.to_json() for a in record.actions],
            "origin": record.origin,
            "records": list(record.records),
        }
    return Event(
        kind,
        {
            **extra,
            "decision_id": record.id,
            # Which path judged it (an upload, or a blob already posted, seen on the firehose, whose
            # record is named): the type stays upload.* so receivers routing on it keep working.
            "source": record.source.value,
            "record_uri": record.record_uri,
            "verdict": verdict.value,
            "rule": d.rule,
            "reason": d.reason,
            "policy_version": d.policy_version,
            "matches": [m.to_json() for m in d.matches],
            "sha256": h.sha256 if h else None,
            "md5": h.md5 if h else None,
            "sha1": h.sha1 if h else None,
            "cid": h.cid if h else None,
            "pdq": [p.hex for p in h.pdq] if h else [],
            "size": h.size if h else None,
            "media_type": h.media_type if h else None,
            "uploader": {
                "did": record.uploader.did,
                "method": record.uploader.method,
                "verified": record.uploader.verified,
            },
        },
    )


def review_event(kind: str, decision_id: str, actor: str, **data: Any) -> Event:
    """A reviewer's decision (release, confirm, reported, takedown) on one held item."""
    return Event(kind, {"decision_id": decision_id, "actor": actor, **data})
