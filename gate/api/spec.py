"""The OpenAPI 3.1 description of ``/api/v1``: its schemas and paths, as data. ``gate.api.openapi`` puts
it together with the review API's; the endpoints (``gate.api.routes``, ``gate.api.inputs``) answer as
it says, and the schemathesis run in the tests holds them to it."""

from __future__ import annotations

from typing import Any

from gate.api.inputs import BASE64, MAX_PDQ
from gate.signals import SignalType
from gate.types import Unhashable, Variant

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def hexes(digits: int, what: str) -> Schema:
    return {"type": "string", "pattern": f"^[0-9a-fA-F]{{{digits}}}$", "description": what}


def closed(properties: dict[str, Schema], *, required: tuple[str, ...] | None = None, **more: Any) -> Schema:
    """An object with exactly these properties (all required unless ``required`` says which)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": False,
        **more,
    }


# A CIDv1, raw codec, sha2-256, base32: "bafkrei", then 52 characters whose first carries two bits of the
# multihash length (so a-h) and whose last ends in two zero bits of padding.
CID = {
    "type": "string",
    "pattern": "^bafkrei[a-h][a-z2-7]{50}[aeimquy4]$",
    "description": "a CIDv1 (raw, sha2-256, base32): what the PDS stores a blob under",
    "examples": ["bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"],
}
PDQ_HEX = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "a PDQ hash, 64 hex digits"}

SCHEMAS: dict[str, Schema] = {
    "Error": closed(
        {
            "error": {"type": "string", "description": "the XRPC error name, e.g. InvalidRequest"},
            "message": {"type": "string", "description": "what went wrong, for a person"},
        },
        description="Every error answer, as XRPC (the AT Protocol's HTTP API) writes them.",
    ),
    "Base64Body": closed(
        {
            "data": {
                "type": "string",
                "pattern": BASE64,
                "minLength": 4,
                "contentEncoding": "base64",
                "description": "the bytes (at least one), in standard base64 with padding",
            }
        },
        description="Bytes for clients that can only send JSON (a third larger than sending them as is).",
    ),
    "PdqHash": closed(
        {
            "hash": PDQ_HEX,
            "quality": {"type": "integer", "minimum": 0, "maximum": 100, "description": "PDQ's quality"},
            "transform": {
                "type": "string",
                "description": "the rotation or mirror image of the stored pixels it is the hash of",
            },
            "frame": {"type": "integer", "minimum": 0, "description": "animation frame, page or size"},
            "variant": {
                "enum": [v.value for v in Variant],
                "description": "why it was computed: stored pixels, as displayed (EXIF orientation), a "
                "dihedral variant, or HMA's own reading of a palette or CMYK picture",
            },
        }
    ),
    "Hashes": closed(
        {
            "media_type": {"type": "string", "description": "the type the bytes are judged as"},
            "media_types": {
                "type": "array",
                "items": {"type": "string"},
                "description": "every type the bytes satisfy (each image decoder that opened them, and "
                "what the magic bytes say)",
            },
            "size": {"type": "integer", "minimum": 0},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "md5": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "sha1": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
            "cid": CID,
            "width": nullable({"type": "integer", "minimum": 0}),
            "height": nullable({"type": "integer", "minimum": 0}),
            "frames": nullable({"type": "integer", "minimum": 0}),
            "pdq": {"type": "array", "items": ref("PdqHash"), "description": "every PDQ hash computed"},
            "phash": nullable({"type": "string", "pattern": "^[0-9a-f]{16}$"}),
            "dhash": nullable({"type": "string", "pattern": "^[0-9a-f]{16}$"}),
            "unhashable": nullable(
                {
                    "enum": [u.value for u in Unhashable],
                    "description": "why an image got no perceptual hash",
                }
            ),
            "unhashable_detail": nullable({"type": "string"}),
        },
        description="Every hash the gate computes for some bytes, as `upload-gate hash --json` prints "
        "them: the exact digests, the CID the PDS would store them under, the media type(s), and for "
        "pictures the dimensions and every PDQ hash with its quality.",
    ),
    "MatchRequest": {
        **closed(
            {
                "sha256": hexes(64, "a SHA-256"),
                "md5": hexes(32, "an MD5 (with a video media_type, also looked up as HMA's video MD5)"),
                "sha1": hexes(40, "a SHA-1"),
                "cid": CID,
                "pdq": {
                    "type": "array",
                    "items": hexes(64, "a PDQ hash"),
                    "minItems": 1,
                    "maxItems": MAX_PDQ,
                    "description": "PDQ hashes (the `hash` of each entry POST /api/v1/hash returns)",
                },
                "phash": hexes(16, "a 64-bit pHash"),
                "dhash": hexes(16, "a 64-bit dHash"),
                "media_type": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "description": "the media type of the bytes hashed, when known (video/…: the MD5 "
                    "is also a video MD5 for HMA)",
                },
            },
            required=(),
        ),
        "anyOf": [{"required": [s]} for s in ("sha256", "md5", "sha1", "cid", "pdq", "phash", "dhash")],
        "description": "Hashes computed elsewhere (at least one). Hex digits in either case.",
    },
    "Match": closed(
        {
            "source": {"enum": ["local", "hma"], "description": "local bank files, or HMA"},
            "bank": {"type": "string"},
            "signal": {"enum": [s.value for s in SignalType]},
            "distance": nullable(
                {"type": "integer", "minimum": 0, "description": "bits apart (perceptual types)"}
            ),
            "content_id": nullable(
                {"type": "string", "description": "the bank entry: file:line, or HMA's content id"}
            ),
            "label": nullable({"type": "string", "description": "the bank entry's label"}),
            "query_hash": nullable({"type": "string", "description": "which of the hashes matched"}),
            "frame": nullable({"type": "integer", "minimum": 0}),
            "variant": nullable({"enum": [v.value for v in Variant]}),
        },
        description="One bank hit.",
    ),
    "MatcherFailure": closed(
        {
            "matcher": {"type": "string", "description": "local, hma or allowlist"},
            "kind": {
                "type": "string",
                "description": "refused, timeout, http_5xx, http_4xx, not_ready, malformed, breaker_open "
                "or error",
            },
        },
        description="A matcher that could not answer: its matches are missing from the answer.",
    ),
    "MatchResponse": closed(
        {
            "matches": {"type": "array", "items": ref("Match")},
            "failures": {"type": "array", "items": ref("MatcherFailure")},
            "policy_version": {"type": "string", "description": "the policy whose lookups were made"},
        }
    ),
}


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
    }
    out: dict[str, Schema] = {"200": ok}
    for name in ("AuthRequired", "Forbidden", "RateLimitExceeded", "Unavailable", *errors):
        out[codes[name]] = {"$ref": f"#/components/responses/{name}"}
    return dict(sorted(out.items()))


def ok(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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
}
