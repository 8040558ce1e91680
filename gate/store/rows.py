"""A ``DecisionRecord`` as a ``decisions`` row: one JSON-safe dict used both for the spool file and for
the insert, so a replayed decision is byte-for-byte the row a direct insert would have written.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from typing import Any

from gate.record import DecisionRecord
from gate.types import Match

# Column name → Postgres type, in insert order. jsonb columns travel as JSON text.
COLUMNS: dict[str, str] = {
    "id": "uuid",
    "time": "timestamptz",
    "source": "text",
    "client_ip": "inet",
    "did": "text",
    "did_method": "text",
    "did_verified": "boolean",
    "claimed_did": "text",
    "verified_how": "text",
    "declared_type": "text",
    "media_type": "text",
    "size": "bigint",
    "sha256": "text",
    "md5": "text",
    "sha1": "text",
    "cid": "text",
    "pdq": "jsonb",
    "phash": "text",
    "dhash": "text",
    "width": "integer",
    "height": "integer",
    "media_types": "jsonb",
    "frames": "integer",
    "unhashable": "text",
    "unhashable_detail": "text",
    "verdict": "text",
    "rule": "text",
    "reason": "text",
    "matches": "jsonb",
    "all_matches": "jsonb",
    "shadow_verdict": "text",
    "shadow_rule": "text",
    "shadow_matches": "jsonb",
    "shadow_only": "boolean",
    "full_scan": "boolean",
    "notes": "jsonb",
    "policy_version": "text",
    "timings_ms": "jsonb",
    "upstream_status": "integer",
    "error": "text",
    "cached": "boolean",
    "record_uri": "text",
    "actions": "jsonb",
    "origin": "uuid",
    "records": "jsonb",
}

# Columns Postgres receives as text and casts itself: parsing there is cheaper than building uuid,
# datetime and ipaddress objects in Python for asyncpg to encode again.
_AS_TEXT = {"uuid", "timestamptz", "inet", "jsonb", "text"}

# One statement per batch: arrays unnested into rows. ON CONFLICT makes a replay after a crash between
# "inserted" and "spool truncated" harmless: the id is the primary key, a second copy is dropped.
# Built from the constant COLUMNS; every value is a bind parameter.
INSERT_SQL = (
    f"INSERT INTO decisions ({', '.join(COLUMNS)}) "  # noqa: S608
    f"SELECT {', '.join(f'u.{c}::{t}' for c, t in COLUMNS.items())} "
    "FROM unnest("
    + ", ".join(f"${i}::{'text' if t in _AS_TEXT else t}[]" for i, t in enumerate(COLUMNS.values(), 1))
    + f") AS u({', '.join(COLUMNS)}) "
    "ON CONFLICT (id) DO NOTHING"
)


def _matches(matches: tuple[Match, ...]) -> list[dict[str, object]]:
    return [m.to_json() for m in matches]


def record_to_row(record: DecisionRecord) -> dict[str, Any]:
    """The row for ``record`` as plain JSON values (str, int, float, bool, None, lists, dicts)."""
    h, d = record.hashes, record.decision
    u = record.uploader
    verdict = record.verdict or (d.verdict if d else None)
    return {
        "id": str(uuid.UUID(hex=record.id)),
        "time": record.time.isoformat(),
        "source": record.source.value,
        "client_ip": record.client_ip,
        "did": u.did,
        "did_method": u.method,
        "did_verified": u.verified,
        "claimed_did": u.claimed_did,
        "verified_how": u.verified_how,
        "declared_type": record.declared_type,
        "media_type": h.media_type if h else None,
        "size": h.size if h else None,
        "sha256": h.sha256 if h else None,
        "md5": h.md5 if h else None,
        "sha1": h.sha1 if h else None,
        "cid": h.cid if h else None,
        "pdq": [p.to_json() for p in h.pdq] if h else [],
        "phash": h.phash if h else None,
        "dhash": h.dhash if h else None,
        "width": h.width if h else None,
        "height": h.height if h else None,
        "media_types": list(h.media_types) if h else [],
        "frames": h.frames if h else None,
        "unhashable": h.unhashable.value if h and h.unhashable else None,
        "unhashable_detail": h.unhashable_detail if h else None,
        "verdict": verdict.value if verdict else None,
        "rule": d.rule if d else None,
        "reason": d.reason if d else None,
        "matches": _matches(d.matches) if d else [],
        "all_matches": _matches(d.all_matches) if d else [],
        "shadow_verdict": d.shadow.verdict.value if d and d.shadow else None,
        "shadow_rule": d.shadow.rule if d and d.shadow else None,
        "shadow_matches": _matches(d.shadow.matches) if d and d.shadow else [],
        "shadow_only": d.shadow_only if d else False,
        "full_scan": d.full_scan if d else None,
        "notes": list(d.notes) if d else [],
        "policy_version": d.policy_version if d else None,
        "timings_ms": {k: round(v, 3) for k, v in record.timings_ms.items()},
        "upstream_status": record.upstream_status,
        "error": record.error,
        "cached": record.cached,
        "record_uri": record.record_uri,
        "actions": [a.to_json() for a in record.actions],
        "origin": str(uuid.UUID(hex=record.origin)) if record.origin else None,
        "records": list(record.records),
    }


def _text(value: Any) -> Any:
    # Postgres text cannot hold NUL; a client-controlled string (declared type, error text) must not be
    # able to make a whole batch fail.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


# One encoder for every value: ``json.dumps`` with options builds a new encoder per call, which was most
# of the cost of a row's nine jsonb values (a decision's whole share of the event loop is a few tens of µs).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _jsonb(value: Any) -> Any:
    if value is None:
        return None
    return _encode(value).replace("\\u0000", "\ufffd")


def _inet(value: Any) -> Any:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None  # never expected (the pipeline parses it); a bad value must not sink the batch


def _same(value: Any) -> Any:
    return value


_CONVERT = {"jsonb": _jsonb, "inet": _inet, "text": _text}
_CONVERTERS = [(col, _CONVERT.get(t, _same)) for col, t in COLUMNS.items()]
# Rows spooled by a gate older than a column, replayed by a newer one: what the column says of them
# (007: every decision before it was an upload; 008: no scan actions, no records known).
_BEFORE: dict[str, Any] = {"source": "upload", "actions": [], "records": []}


def insert_args(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """Column-wise parameter arrays for ``INSERT_SQL``."""
    return [[convert(row.get(col, _BEFORE.get(col))) for row in rows] for col, convert in _CONVERTERS]
