"""The OpenAPI 3.1 description of the review JSON API (``gate.admin.review_api``), as data; put together
with the service API's by ``gate.api.openapi``. The routes answer as it says: the schemathesis run in the
tests holds them to it, as it does ``/api/v1``."""

from __future__ import annotations

from typing import Any

from gate.admin.review_api import BODY_BYTES
from gate.api.schemas import Schema, closed, nullable, ref
from gate.store.item import EvidenceState

STR: Schema = {"type": "string"}
TIME: Schema = {"type": "string", "format": "date-time"}
# A string Postgres can keep (no NUL) and a person can read.
TEXT = "^[^\\u0000]*$"

SCHEMAS: dict[str, Schema] = {
    "Item": closed(
        {
            "decision_id": {"type": "string", "description": "the decision's id (a UUID): the item's id"},
            "created_at": TIME,
            "verdict": {"enum": ["quarantine", "reject"]},
            "state": {"enum": [s.value for s in EvidenceState]},
            "state_changed_at": TIME,
            "state_changed_by": STR,
            "sha256": STR,
            "md5": STR,
            "sha1": STR,
            "cid": STR,
            "size": {"type": "integer", "minimum": 0},
            "media_type": nullable(STR),
            "declared_type": nullable(STR),
            "pdq": {"type": "array", "items": {"type": "object"}},
            "rule": nullable(STR),
            "reason": nullable(STR),
            "matches": {"type": "array", "items": {"type": "object"}},
            "policy_version": nullable(STR),
            "client_ip": nullable(STR),
            "did": nullable({**STR, "description": "the DID the upload's token claimed"}),
            "did_method": STR,
            "verified_did": nullable({**STR, "description": "set once the PDS accepted the caller"}),
            "verified_at": nullable(TIME),
            "verified_how": nullable(STR),
            "key_id": nullable(STR),
            "has_bytes": {"type": "boolean", "description": "false once released or purged"},
            "expires_at": nullable(TIME),
            "legal_hold": {"type": "boolean"},
            "legal_hold_reason": nullable(STR),
            "legal_hold_by": nullable(STR),
            "legal_hold_at": nullable(TIME),
            "report_id": nullable(STR),
            "reported_at": nullable(TIME),
            "human_viewed": {"type": "boolean"},
            "purged_at": nullable(TIME),
            "purge_reason": nullable(STR),
            "record_uri": nullable(
                {**STR, "description": "for an item the firehose watcher held: the record it was seen in"}
            ),
        },
        description="One held (or kept rejected) upload: metadata only, never its bytes.",
    ),
    "AuditEntry": closed(
        {
            "id": {"type": "integer"},
            "at": TIME,
            "actor": {**STR, "description": "the token's name, or gate"},
            "action": STR,
            "subject": nullable(STR),
            "detail": {"type": "object"},
        }
    ),
    "ItemAnswer": closed({"item": ref("Item")}),
}


def _errors(*codes: str) -> dict[str, Schema]:
    described = {
        "400": "The request is malformed.",
        "401": "No bearer token, or one the gate does not know.",
        "403": "The token's role may not do this (admin actions), or a reveal link expired.",
        "404": "No such item, or its evidence is gone.",
        "409": "The item's state or legal hold forbids it, or there is no allowlist bank to release to.",
        "413": f"The body is over the review API's limit ({BODY_BYTES // 1024} KiB).",
        "503": "Postgres cannot answer now; nothing was changed.",
    }
    return {
        c: {"description": described[c], "content": {"application/json": {"schema": ref("Error")}}}
        for c in codes
    }


def _op(op_id: str, summary: str, ok: Schema, *codes: str, body: Schema | None = None, **more: Any) -> Schema:
    operation: Schema = {
        "operationId": op_id,
        "tags": ["review"],
        "summary": summary,
        "responses": {"200": ok, **_errors("401", "403", "503", *codes)},
        **more,
    }
    if body is not None:
        operation["responses"] |= _errors("413")
        operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return operation


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ITEM_ID = {"name": "id", "in": "path", "required": True, "schema": STR, "description": "the item's id"}
REASON = {"type": "string", "pattern": TEXT}
ITEM = _json("The item after the change.", ref("ItemAnswer"))

PATHS: dict[str, Schema] = {
    "/admin/api/items": {
        "get": _op(
            "listItems",
            "The review queue",
            _json(
                "Items, newest first (metadata only).",
                closed({"items": {"type": "array", "items": ref("Item")}}),
            ),
            "400",
            parameters=[
                {
                    "name": "state",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": [*(s.value for s in EvidenceState), "all"], "default": "held"},
                    "description": "which items: held (default), released, confirmed, reported or all",
                }
            ],
        )
    },
    "/admin/api/items/{id}": {
        "parameters": [ITEM_ID],
        "get": _op(
            "getItem",
            "One item and its audit trail",
            _json(
                "The item.",
                closed({"item": ref("Item"), "audit": {"type": "array", "items": ref("AuditEntry")}}),
            ),
            "404",
        ),
    },
    "/admin/api/items/{id}/preview": {
        "parameters": [ITEM_ID],
        "get": _op(
            "previewItem",
            "A small blurred greyscale JPEG of the item",
            {
                "description": "The preview.",
                "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
            },
            "404",
        ),
    },
    "/admin/api/items/{id}/reveal": {
        "parameters": [ITEM_ID],
        "post": _op(
            "revealItem",
            "A short-lived link to the original, for this token only (audited)",
            _json(
                "The link and when it expires (Unix seconds).",
                closed({"url": STR, "expires": {"type": "integer"}}),
            ),
            "404",
        ),
    },
    "/admin/api/items/{id}/original": {
        "parameters": [ITEM_ID],
        "get": _op(
            "itemOriginal",
            "The original bytes, through a reveal link (marks the item viewed by a human)",
            {
                "description": "The bytes.",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            "404",
            parameters=[
                {
                    "name": "t",
                    "in": "query",
                    "required": True,
                    "schema": STR,
                    "description": "the link's token",
                }
            ],
        ),
    },
    "/admin/api/items/{id}/release": {
        "parameters": [ITEM_ID],
        "post": _op(
            "releaseItem", "A false positive: allowlist the SHA-256, delete the evidence", ITEM, "404", "409"
        ),
    },
    "/admin/api/items/{id}/confirm": {
        "parameters": [ITEM_ID],
        "post": _op(
            "confirmItem",
            "Confirm the match; takedown (admin) also takes the verified uploader's account down",
            _json(
                "The item, and what the takedown did.",
                closed({"item": ref("Item"), "takedown": nullable(STR), "message": nullable(STR)}),
            ),
            "400",
            "404",
            "409",
            body=closed({"takedown": {"type": "boolean"}}, required=()),
        ),
    },
    "/admin/api/items/{id}/reported": {
        "parameters": [ITEM_ID],
        "post": _op(
            "itemReported",
            "Record the CyberTipline report id (starts the preservation clock)",
            ITEM,
            "400",
            "404",
            "409",
            body=closed({"report_id": {"type": "string", "pattern": TEXT}}),
        ),
    },
    "/admin/api/items/{id}/legal-hold": {
        "parameters": [ITEM_ID],
        "post": _op(
            "placeLegalHold",
            "Keep the evidence, whatever its deadline, until lifted (admin)",
            ITEM,
            "400",
            "404",
            "409",
            body=closed({"reason": REASON}),
        ),
    },
    "/admin/api/items/{id}/legal-hold/lift": {
        "parameters": [ITEM_ID],
        "post": _op(
            "liftLegalHold",
            "Lift a legal hold (admin)",
            ITEM,
            "400",
            "404",
            "409",
            body=closed({"reason": nullable(REASON)}, required=()),
        ),
    },
    "/admin/api/audit": {
        "get": _op(
            "auditTrail",
            "The audit trail of one item (admin; the read is audited too)",
            _json("Entries, oldest first.", closed({"audit": {"type": "array", "items": ref("AuditEntry")}})),
            "400",
            parameters=[
                {
                    "name": "subject",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "pattern": TEXT, "minLength": 1, "maxLength": 200},
                    "description": "an item id",
                }
            ],
        )
    },
}
