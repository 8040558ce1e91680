"""The OpenAPI schemas of hashes and matches, and the helpers every schema of the document is written
with (``gate.api.decision_schemas`` has the decisions', ``gate.api.spec`` the operations)."""

from __future__ import annotations

from typing import Any

from gate.api.blobs import CID as CID_PATTERN
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


CID = {
    "type": "string",
    "pattern": CID_PATTERN,
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
