"""The decision record: one row per judged upload, and the sink protocol that stores it.

The pipeline builds a ``DecisionRecord`` after acting and hands it to a ``DecisionSink``. The sink must
never block the request: ``submit`` does no I/O (the decision log turns the record into its row, tens
of µs, and enqueues that). ``accepting`` tells the pipeline whether records can still be kept (queue not
full, database or spool writable); when not, the policy's ``on_log_failure`` decides whether uploads
keep flowing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from gate.types import ActionTaken, Decision, DecisionSource, Hashes, Uploader, Verdict


def new_decision_id() -> str:
    """A sortable id: 48-bit millisecond time then 80 random bits, as 32 hex chars (UUIDv7 layout)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    return f"{value:032x}"


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    id: str
    time: datetime
    source: DecisionSource  # which path judged the bytes
    client_ip: str | None
    uploader: Uploader  # names a DID only when the PDS accepted the caller
    declared_type: str | None
    hashes: Hashes | None  # None when the body could not be read (413, 415...)
    decision: Decision | None  # None when no decision was reached (error before evaluate)
    verdict: Verdict | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    upstream_status: int | None = None
    error: str | None = None  # what went wrong, for the operator; never body bytes or tokens
    cached: bool = False  # verdict reused from the in-memory verdict cache
    record_uri: str | None = None  # the record the blob was seen in (firehose): at://DID/COLLECTION/RKEY
    actions: tuple[ActionTaken, ...] = ()  # what a scan or retro-hunt did about it ([scan])
    origin: str | None = None  # a retro decision's original decision id
    records: tuple[str, ...] = ()  # at:// URIs of the records that reference the blob, when known (scans)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def to_log(self) -> dict[str, object]:
        """A flat, JSON-safe view for structured logs. Hashes and verdicts, never bytes or tokens."""
        h, d = self.hashes, self.decision
        return {
            "id": self.id,
            "source": self.source.value,
            "verdict": self.verdict.value if self.verdict else None,
            "rule": d.rule if d else None,
            "reason": d.reason if d else None,
            "shadow": d.shadow.rule if d and d.shadow else None,
            "did": self.uploader.did,
            "did_method": self.uploader.method,
            "verified_how": self.uploader.verified_how,
            "client_ip": self.client_ip,
            "size": h.size if h else None,
            "media_type": h.media_type if h else None,
            "declared_type": self.declared_type,
            "sha256": h.sha256 if h else None,
            "cid": h.cid if h else None,
            "pdq": [p.hex for p in h.pdq] if h else [],
            "unhashable": h.unhashable.value if h and h.unhashable else None,
            "matches": [m.to_json() for m in (d.all_matches if d else ())],
            "policy": d.policy_version if d else None,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "upstream_status": self.upstream_status,
            "error": self.error,
            "cached": self.cached,
            "record_uri": self.record_uri,
            "actions": [a.to_json() for a in self.actions],
            "origin": self.origin,
            "records": list(self.records),
        }


class DecisionSink(Protocol):
    def accepting(self) -> bool: ...

    def submit(self, record: DecisionRecord) -> None: ...


class NullSink:
    """The sink when no decision log is configured. The pipeline logs every decision itself, so
    this only keeps the protocol total; it never refuses."""

    def accepting(self) -> bool:
        return True

    def submit(self, record: DecisionRecord) -> None:
        return None
