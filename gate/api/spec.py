"""The OpenAPI 3.1 operations of ``/api/v1`` and their answers, as data. ``gate.api.openapi`` puts them
together with the schemas (``gate.api.schemas``, ``gate.api.decision_schemas``) and the review API's; the
endpoints (``gate.api.routes``, ``gate.api.inputs``) answer as they say, and the schemathesis run in the
tests holds them to it."""

from __future__ import annotations

from gate.api.inputs import DURATION, MAX_LIMIT, SHA256
from gate.api.inputs import TEXT as TEXT_PATTERN
from gate.api.schemas import Schema, ref
from gate.types import DecisionSource, Verdict

WHEN: Schema = {
    "anyOf": [
        {"type": "string", "pattern": DURATION},
        {"type": "string", "format": "date-time"},
    ]
}
TEXT: Schema = {"type": "string", "pattern": TEXT_PATTERN}


def error(description: str, *headers: str) -> Schema:
    answer: Schema = {
        "description": description,
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if headers:
        answer["headers"] = {h: {"$ref": f"#/components/headers/{h}"} for h in headers}
    return answer


RESPONSES: dict[str, Schema] = {
    "InvalidRequest": error("The request is malformed; the message says how."),
    "AuthRequired": error("No bearer token, or one the gate does not know.", "WWW-Authenticate"),
    "Forbidden": error("The token's role may not do this."),
    "PayloadTooLarge": error("The body is over the gate's upload limit (GATE_MAX_UPLOAD_BYTES)."),
    "UnsupportedMediaType": error(
        "A Content-Encoding the gate does not decode, or a body that must be JSON."
    ),
    "RequestTimeout": error("The body arrived too slowly."),
    "RateLimitExceeded": error("Over this token's rate (GATE_API_RATE, GATE_API_BURST).", "Retry-After"),
    "Unavailable": error(
        "The memory budget for bodies is full, or Postgres cannot record the call: retry later.",
        "Retry-After",
    ),
    "NotFound": error("The PDS has no such blob for that DID (or does not serve the repo's blobs)."),
    "UpstreamFailure": error("The PDS could not be asked, or its bytes do not match the CID."),
    "UpstreamTimeout": error("The PDS did not send the blob in time."),
}
HEADERS: dict[str, Schema] = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "WWW-Authenticate": {"description": "the bearer realm", "schema": {"type": "string"}},
}


def answers(ok: Schema, *errors: str) -> dict[str, Schema]:
    codes = {
        "InvalidRequest": "400",
        "AuthRequired": "401",
        "Forbidden": "403",
        "RequestTimeout": "408",
        "PayloadTooLarge": "413",
        "UnsupportedMediaType": "415",
        "RateLimitExceeded": "429",
        "Unavailable": "503",
        "NotFound": "404",
        "UpstreamFailure": "502",
        "UpstreamTimeout": "504",
    }
    out: dict[str, Schema] = {"200": ok}
    for name in ("AuthRequired", "Forbidden", "RateLimitExceeded", "Unavailable", *errors):
        out[codes[name]] = {"$ref": f"#/components/responses/{name}"}
    return dict(sorted(out.items()))


def ok(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def flag(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "boolean"},
        "description": description,
    }


BYTES_BODY: Schema = {
    "required": True,
    "description": "The bytes themselves with any Content-Type but application/json (as "
    "com.atproto.repo.uploadBlob takes them; gzip, deflate or br Content-Encoding is decoded first), or "
    'JSON {"data": base64}.',
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary", "minLength": 1}},
        "application/json": {"schema": ref("Base64Body")},
    },
}
BODY_ERRORS = ("InvalidRequest", "RequestTimeout", "PayloadTooLarge", "UnsupportedMediaType")

PATHS: dict[str, Schema] = {
    "/api/v1/hash": {
        "post": {
            "operationId": "hash",
            "tags": ["api"],
            "summary": "Every hash of some bytes",
            "description": "Hashes the bytes as the gate hashes uploads (under the policy in force: its "
            "quality cut-off, frame limits and dihedral setting), and answers every hash, as "
            "`upload-gate hash --json` prints them. Nothing is looked up and nothing is recorded but the "
            "call's audit row (the token's name, the SHA-256 and size).",
            "parameters": [
                flag("dihedral", "also the 8 rotations and mirror images' PDQ hashes"),
                flag("phash", "also a pHash (needs the gate's imagehash extra)"),
                flag("dhash", "also a dHash (needs the gate's imagehash extra)"),
            ],
            "requestBody": BYTES_BODY,
            "responses": answers(ok("The hashes.", ref("Hashes")), *BODY_ERRORS),
        }
    },
    "/api/v1/match": {
        "post": {
            "operationId": "match",
            "tags": ["api"],
            "summary": "Bank matches for hashes",
            "description": "Looks hashes computed elsewhere up in the local banks, the reviewed allowlist "
            "and HMA, as the policy in force asks: the banks its rules name, perceptual hashes out to the "
            "widest distance any rule acts on. Answers every match and any matcher that could not answer. "
            "Audited with the token's name and which banks matched.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("MatchRequest")}},
            },
            "responses": answers(
                ok("The matches.", ref("MatchResponse")),
                "InvalidRequest",
                "PayloadTooLarge",
                "UnsupportedMediaType",
                "RequestTimeout",
            ),
        }
    },
    "/api/v1/scan": {
        "post": {
            "operationId": "scan",
            "tags": ["api"],
            "summary": "The decision for some bytes, or for a blob the PDS stores",
            "description": "Judges bytes — sent as the body, as base64 in JSON, or named as a blob the PDS "
            'stores (`{"did", "cid"}`, fetched from its getBlob and checked against the CID) — with '
            "the gate's judge, under the policy in force: hashed, matched and evaluated exactly as an "
            "upload of the same bytes would be (the verdict cache included). Nothing is done about the "
            "verdict: no evidence is kept, nothing is withheld or taken down. With `record=true` the "
            "decision is also written to the decision log (source `api`; the blob's DID as its uploader), "
            "and its id answered. Audited with the token's name, the SHA-256, the verdict and the blob.",
            "parameters": [flag("record", "also write the decision to the decision log")],
            "requestBody": {
                **BYTES_BODY,
                "content": {
                    **BYTES_BODY["content"],
                    "application/json": {"schema": {"oneOf": [ref("Base64Body"), ref("BlobRef")]}},
                },
            },
            "responses": answers(
                ok("The decision.", ref("ScanResponse")),
                *BODY_ERRORS,
                "NotFound",
                "UpstreamFailure",
                "UpstreamTimeout",
            ),
        }
    },
    "/api/v1/decisions": {
        "get": {
            "operationId": "decisions",
            "tags": ["api"],
            "summary": "The decision log, newest first",
            "description": "Logged decisions filtered as `upload-gate decisions` filters them (every path's: "
            "uploads, scans, the API…), newest first. The uploader's address is never answered. Audited "
            "with the token's name and the filters.",
            "parameters": [
                query("since", WHEN, "decisions at or after: a duration ago (30m, 24h, 7d) or a date-time"),
                query("until", WHEN, "decisions before: same forms as since"),
                query("verdict", {"enum": [v.value for v in Verdict]}, "only this verdict"),
                query("source", {"enum": [s.value for s in DecisionSource]}, "only this path's decisions"),
                query("did", TEXT, "the uploader's DID (set only when verified)"),
                query("cid", TEXT, "the blob's CID"),
                query("sha256", {"type": "string", "pattern": SHA256}, "the SHA-256 of the bytes"),
                query("rule", TEXT, "the rule that decided"),
                flag("shadow", "only decisions where a shadow rule fired"),
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
                    "at most this many rows",
                ),
            ],
            "responses": answers(ok("The decisions.", ref("DecisionList")), "InvalidRequest"),
        }
    },
}
