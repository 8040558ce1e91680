"""A ``DecisionRecord`` as a ``decisions`` row: one JSON-safe dict used both for the spool file and for
the insert, so a replayed decision is byte-for-byte the row a direct insert would have written.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
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

# One statement per batch, its one parameter a JSON array of the rows (``batch_json``) that Postgres
# unpacks itself: under 1,000 decisions/s, 45 parameter arrays of a batch's values, each value converted
# and then encoded by asyncpg in one go, held the event loop for milliseconds per batch; one JSON text
# per row costs a single C call. ON CONFLICT makes a replay after a crash between "inserted" and "spool
# truncated" harmless: the id is the primary key, a second copy is dropped. Built from the constant
# COLUMNS; the rows are the bind parameter.
INSERT_SQL = (
    f"INSERT INTO decisions ({', '.join(COLUMNS)}) "  # noqa: S608
    f"SELECT {', '.join(COLUMNS)} FROM json_to_recordset($1::json) "
    f"AS u({', '.join(f'{c} {t}' for c, t in COLUMNS.items())}) "
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


# One encoder for every row: ``json.dumps`` with options builds a new encoder per call. ASCII output: a
# lone surrogate is then an escape Postgres refuses (one row), not a batch asyncpg cannot encode.
_encode = json.JSONEncoder(separators=(",", ":")).encode
# A NUL, escaped by the encoder: Postgres text and jsonb cannot hold one, and a client-controlled string
# (declared type, error text) must not be able to make a whole batch fail. Only an escape, not the text
# "\\u0000" a string may hold literally (its backslash escaped: an odd run of backslashes before "u").
_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
# Rows spooled by a gate older than a column, replayed by a newer one: what the column says of them
# (007: every decision before it was an upload; 008: no scan actions, no records known).
_BEFORE: dict[str, Any] = {"source": "upload", "actions": [], "records": []}


@functools.lru_cache(maxsize=4096)
def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def row_json(row: dict[str, Any]) -> str:
    """``row`` as the JSON text ``batch_json`` joins: NULs replaced, a client address Postgres would
    refuse left out (never expected: the pipeline parses it; a bad value must not sink the batch)."""
    ip = row.get("client_ip")
    bad_ip = ip is not None and not _is_ip(ip)
    if bad_ip or len(row) < len(COLUMNS):
        row = _BEFORE | row | ({"client_ip": None} if bad_ip else {})
    text = _encode(row)
    return _NUL.sub("\\1\ufffd", text) if "\\u0000" in text else text


def batch_json(texts: list[str]) -> str:
    """The parameter of ``INSERT_SQL``: the rows' ``row_json`` texts as one JSON array."""
    return "[" + ",".join(texts) + "]"


def insert_args(rows: list[dict[str, Any]]) -> list[str]:
    """The parameters of ``INSERT_SQL`` for ``rows``, all at once (the decision log builds its batch's a
    slice at a time, with ``row_json`` and ``batch_json``)."""
    return [batch_json([row_json(row) for row in rows])]
