"""An evidence item as the store hands it out: its metadata and state, never its bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg


class EvidenceState(StrEnum):
    HELD = "held"  # waiting for review; expires after the policy's hold period
    RELEASED = "released"  # a false positive: evidence deleted at once
    CONFIRMED = "confirmed"  # a reviewer confirmed the match; kept until reported (+ one year)
    REPORTED = "reported"  # reported (CyberTipline id); kept ≥ one year from the report


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    decision_id: str  # canonical UUID text, = decisions.id
    created_at: datetime
    verdict: str  # quarantine | reject
    state: EvidenceState
    state_changed_at: datetime
    state_changed_by: str
    sha256: str
    md5: str
    sha1: str
    cid: str
    size: int
    media_type: str | None
    declared_type: str | None
    pdq: list[dict[str, Any]]
    rule: str | None
    reason: str | None
    matches: list[dict[str, Any]]
    policy_version: str | None
    client_ip: str | None
    did: str | None  # as claimed by the upload's token
    did_method: str
    verified_did: str | None  # set once verified; only this may drive account actions
    verified_at: datetime | None
    verified_how: str | None
    key_id: str | None
    has_bytes: bool  # False once released or purged
    expires_at: datetime | None  # None: no deadline (confirmed but not yet reported)
    legal_hold: bool  # while set, the bytes are never purged or released
    legal_hold_reason: str | None  # the matter it is held for, as the admin who placed it wrote it
    legal_hold_by: str | None
    legal_hold_at: datetime | None
    report_id: str | None
    reported_at: datetime | None
    human_viewed: bool
    purged_at: datetime | None
    purge_reason: str | None
    record_uri: str | None  # the record a firehose item was seen in (None: an upload)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["state"] = self.state.value
        return out


# Every column but the sealed bytes: listing items never moves ciphertext around.
ITEM_COLUMNS = (
    "decision_id, created_at, verdict, state, state_changed_at, state_changed_by, sha256, md5, sha1, cid,"
    " size, media_type, declared_type, pdq, rule, reason, matches, policy_version, client_ip, did,"
    " did_method, verified_did, verified_at, verified_how, key_id, ciphertext IS NOT NULL AS has_bytes,"
    " expires_at, legal_hold, legal_hold_reason, legal_hold_by, legal_hold_at, report_id, reported_at,"
    " human_viewed, purged_at, purge_reason, record_uri"
)
SELECT_ITEM = f"SELECT {ITEM_COLUMNS} FROM evidence WHERE decision_id = $1"  # noqa: S608 (constants only)


def json_value(value: Any) -> Any:
    """A jsonb column as Python (asyncpg hands jsonb over as text unless told otherwise)."""
    return json.loads(value) if isinstance(value, str) else value


def item_from_row(row: asyncpg.Record) -> EvidenceItem:
    return EvidenceItem(
        decision_id=str(row["decision_id"]),
        created_at=row["created_at"],
        verdict=row["verdict"],
        state=EvidenceState(row["state"]),
        state_changed_at=row["state_changed_at"],
        state_changed_by=row["state_changed_by"],
        sha256=row["sha256"],
        md5=row["md5"],
        sha1=row["sha1"],
        cid=row["cid"],
        size=row["size"],
        media_type=row["media_type"],
        declared_type=row["declared_type"],
        pdq=json_value(row["pdq"]),
        rule=row["rule"],
        reason=row["reason"],
        matches=json_value(row["matches"]),
        policy_version=row["policy_version"],
        client_ip=str(row["client_ip"]) if row["client_ip"] is not None else None,
        did=row["did"],
        did_method=row["did_method"],
        verified_did=row["verified_did"],
        verified_at=row["verified_at"],
        verified_how=row["verified_how"],
        key_id=row["key_id"],
        has_bytes=row["has_bytes"],
        expires_at=row["expires_at"],
        legal_hold=row["legal_hold"],
        legal_hold_reason=row["legal_hold_reason"],
        legal_hold_by=row["legal_hold_by"],
        legal_hold_at=row["legal_hold_at"],
        report_id=row["report_id"],
        reported_at=row["reported_at"],
        human_viewed=row["human_viewed"],
        purged_at=row["purged_at"],
        purge_reason=row["purge_reason"],
        record_uri=row["record_uri"],
    )
