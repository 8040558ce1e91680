"""The OpenAPI schemas of decisions: what ``POST /api/v1/scan`` decides and what ``GET /api/v1/decisions``
lists. A listed row's properties follow the decision log's columns (``gate.store.rows.COLUMNS``, less the
ones the API withholds), so a new column changes the document and the committed copy's test says so."""

from __future__ import annotations

from gate.api.blobs import DID as DID_PATTERN
from gate.api.inputs import WITHHELD_COLUMNS
from gate.api.schemas import CID, Schema, closed, nullable, ref
from gate.store.rows import COLUMNS
from gate.types import DecisionSource, Verdict

VERDICT: Schema = {"enum": [v.value for v in Verdict]}
MATCHES: Schema = {"type": "array", "items": ref("Match")}
_BY_TYPE: dict[str, Schema] = {
    "uuid": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "timestamptz": {"type": "string", "format": "date-time"},
    "text": {"type": "string"},
    "inet": {"type": "string"},
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer"},
    "bigint": {"type": "integer", "minimum": 0},
    "jsonb": {"type": ["array", "object"]},
}
# Columns whose values say more than their Postgres type; and those never NULL.
_COLUMN: dict[str, Schema] = {
    "source": {"enum": [s.value for s in DecisionSource], "description": "the path that judged the bytes"},
    "verdict": VERDICT,
    "shadow_verdict": VERDICT,
    "pdq": {"type": "array", "items": ref("PdqHash")},
    "matches": MATCHES,
    "all_matches": MATCHES,
    "shadow_matches": MATCHES,
    "media_types": {"type": "array", "items": {"type": "string"}},
    "notes": {"type": "array", "items": {"type": "string"}},
    "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
}
_NOT_NULL = frozenset(
    {"id", "time", "source", "did_method", "did_verified", "shadow_only", "cached"}
    | {"pdq", "matches", "all_matches", "shadow_matches", "notes", "timings_ms", "media_types"}
)


def _column(name: str, kind: str) -> Schema:
    schema = _COLUMN.get(name, _BY_TYPE[kind])
    return schema if name in _NOT_NULL else nullable(schema)


SCHEMAS: dict[str, Schema] = {
    "BlobRef": closed(
        {
            "did": {
                "type": "string",
                "pattern": DID_PATTERN,
                "description": "the account (did:plc or did:web)",
            },
            "cid": CID,
        },
        description="A blob the PDS stores, fetched from its com.atproto.sync.getBlob and checked against "
        "the CID before it is judged.",
    ),
    "Decision": closed(
        {
            "verdict": VERDICT,
            "rule": {"type": "string", "description": "the rule (or built-in choice) that decided"},
            "reason": {"type": "string", "description": "match, no_match, allowlist, unhashable…"},
            "matches": {**MATCHES, "description": "the matches that drove the verdict"},
            "all_matches": {**MATCHES, "description": "every match seen"},
            "shadow": nullable(
                closed(
                    {"verdict": VERDICT, "rule": {"type": "string"}, "matches": MATCHES},
                    description="what shadow rules would have done (recorded, not applied)",
                )
            ),
            "shadow_only": {"type": "boolean", "description": "a shadow rule would have been stricter"},
            "full_scan": {"type": "boolean", "description": "false: judged without a full scan"},
            "notes": {"type": "array", "items": {"type": "string"}},
            "policy_version": {"type": "string"},
        },
        description="What the policy in force decides for the bytes, as it would for an upload.",
    ),
    "ScanResponse": closed(
        {
            "decision": ref("Decision"),
            "hashes": ref("Hashes"),
            "cached": {
                "type": "boolean",
                "description": "the decision of an earlier judgement of the same bytes",
            },
            "recorded": nullable(
                {
                    "type": "string",
                    "pattern": "^[0-9a-f]{32}$",
                    "description": "the decision log row's id (record=true), source api",
                }
            ),
        }
    ),
    "DecisionRow": closed(
        {name: _column(name, kind) for name, kind in COLUMNS.items() if name not in WITHHELD_COLUMNS},
        description="One row of the decision log, as `upload-gate decisions --json` prints it, less the "
        "uploader's address. `did` is set only when the uploader was verified (the PDS accepted the "
        "caller, or the repo holds the blob).",
    ),
    "DecisionList": closed({"decisions": {"type": "array", "items": ref("DecisionRow")}}),
}
