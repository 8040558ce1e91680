"""What an API request asks about: bytes (the body itself, or base64 in JSON), a stored blob
(``{did, cid}``), hashes to match, options in the query string. Checked here against what the OpenAPI
document (``gate.api.spec``) promises, so a request the document calls valid is served and one it
calls invalid is a clear 400 — the schemathesis run holds both to it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from gate.api.service import Api
from gate.errors import InvalidRequest, PayloadTooLarge
from gate.proxy.body import BodyReader
from gate.proxy.budget import Reservation
from gate.signals import SIGNALS, SignalType
from gate.store.query import Filters, parse_when
from gate.types import DecisionSource, Hashes, PdqHash, Verdict

# Standard base64 with its padding: what every language's encoder writes.
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_BASE64 = re.compile(BASE64)
MAX_PDQ = 256  # PDQ hashes in one match request: every frame and variant of an animation


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A blob the PDS stores: fetched from it, then judged."""

    did: str
    cid: str


def flag(query: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter: ``true``/``false`` (also ``1``/``0``); absent is false."""
    raw = query.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidRequest(f"{name} must be true or false")


def is_json(request: web.Request) -> bool:
    return request.content_type == "application/json"


async def read_json(request: web.Request, reader: BodyReader, reservation: Reservation) -> dict[str, Any]:
    """A JSON object body, under ``reader``'s limits; 400 for anything else."""
    raw = await reader.read(request, reservation)
    try:
        body = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        raise InvalidRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("expected a JSON object")
    return body


def only(body: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"{what}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def decoded(data: object, reservation: Reservation, max_bytes: int) -> bytes:
    """The bytes of a JSON body's ``data`` (standard base64), reserved against the memory budget."""
    if not isinstance(data, str) or not data or not _BASE64.match(data):
        raise InvalidRequest("data must be the bytes (at least one) in standard base64, with = padding")
    if len(data) // 4 * 3 > max_bytes + 2:
        raise PayloadTooLarge(f"data holds more than {max_bytes} bytes")
    reservation.grow_to(reservation.held + len(data) // 4 * 3)
    body = base64.b64decode(data, validate=True)
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"data holds more than {max_bytes} bytes")
    return body


async def read_raw(request: web.Request, api: Api, reservation: Reservation) -> bytes:
    body = await api.raw_bodies.read(request, reservation)
    if not body:
        raise InvalidRequest("the body is empty: send the bytes (or JSON with them in base64)")
    return body


async def read_bytes(request: web.Request, api: Api, reservation: Reservation) -> bytes:
    """The bytes to hash: the body itself, or ``{"data": base64}`` when the body is JSON."""
    if not is_json(request):
        return await read_raw(request, api, reservation)
    return _data(await read_json(request, api.json_bodies, reservation), api, reservation)


async def read_subject(request: web.Request, api: Api, reservation: Reservation) -> bytes | BlobRef:
    """The bytes to judge: as ``read_bytes``, or a stored blob named by ``{"did", "cid"}``."""
    if not is_json(request):
        return await read_raw(request, api, reservation)
    body = await read_json(request, api.json_bodies, reservation)
    if "data" in body:
        return _data(body, api, reservation)
    only(body, {"did", "cid"}, "the body")
    did, cid = body.get("did"), body.get("cid")
    if not isinstance(did, str) or not isinstance(cid, str):
        raise InvalidRequest('expected {"data": "<base64>"} or {"did": "did:…", "cid": "bafkrei…"}')
    return BlobRef(did, cid)


def _data(body: dict[str, Any], api: Api, reservation: Reservation) -> bytes:
    only(body, {"data"}, "the body")
    if "data" not in body:
        raise InvalidRequest('expected {"data": "<base64>"}')
    return decoded(body["data"], reservation, api.raw_bodies.limits.max_bytes)


# The hashes a match request may carry: the exact and perceptual types a bank can hold.
MATCH_FIELDS = (
    SignalType.SHA256,
    SignalType.MD5,
    SignalType.SHA1,
    SignalType.CID,
    SignalType.PHASH,
    SignalType.DHASH,
)


def match_hashes(body: dict[str, Any]) -> Hashes:
    """A match request's hashes as the matchers take them (what the gate would have computed)."""
    only(body, {*MATCH_FIELDS, "pdq", "media_type"}, "the body")
    values: dict[str, str] = {}
    for signal in MATCH_FIELDS:
        if signal in body:
            values[signal.value] = _hash(signal, body[signal], signal.value)
    pdq = body.get("pdq", [])
    if not isinstance(pdq, list) or len(pdq) > MAX_PDQ or ("pdq" in body and not pdq):
        raise InvalidRequest(f"pdq must be a list of 1 to {MAX_PDQ} PDQ hashes")
    hexes = [_hash(SignalType.PDQ, value, f"pdq[{i}]") for i, value in enumerate(pdq)]
    if not values and not hexes:
        raise InvalidRequest("give at least one hash: " + ", ".join([*MATCH_FIELDS, "pdq"]))
    media_type = body.get("media_type", "application/octet-stream")
    if not isinstance(media_type, str) or not 0 < len(media_type) <= 255:
        raise InvalidRequest("media_type must be a media type such as image/jpeg or video/mp4")
    return Hashes(
        sha256=values.get("sha256", ""),
        md5=values.get("md5", ""),
        sha1=values.get("sha1", ""),
        cid=values.get("cid", ""),
        size=0,
        media_type=media_type,
        media_types=(media_type,),
        pdq=tuple(PdqHash(h, quality=100) for h in dict.fromkeys(hexes)),
        phash=values.get("phash"),
        dhash=values.get("dhash"),
    )


def _hash(signal: SignalType, value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where} must be a string")
    # Hex digits in either case (normalised); nothing else added or trimmed, as the document says.
    text = value if signal is SignalType.CID else value.lower()
    problem = SIGNALS[signal].problem(text)
    if problem is not None:
        raise InvalidRequest(f"{where}: {problem}")
    return text


# GET /api/v1/decisions: the CLI's filters, each checked as the document describes it.
DURATION = r"^[0-9]{1,6}(\.[0-9]{1,3})?[smhdw]$"
_DURATION = re.compile(DURATION)
TEXT = "^[^\\u0000]{1,200}$"  # Postgres text: no NUL
_TEXT = re.compile(TEXT)
SHA256 = "^[0-9a-fA-F]{64}$"
MAX_LIMIT = 1000
DECISION_FILTERS = ("since", "until", "verdict", "source", "did", "cid", "sha256", "rule", "shadow", "limit")
# Never answered: the uploader's address is the operator's to see (upload-gate decisions), not a service's.
WITHHELD_COLUMNS = frozenset({"client_ip"})


def decision_filters(query: Mapping[str, str]) -> Filters:
    def text(name: str, pattern: re.Pattern[str] = _TEXT) -> str | None:
        value = query.get(name)
        if value is not None and not pattern.match(value):
            raise InvalidRequest(f"{name}: not a valid value")
        return value

    def choice(name: str, allowed: tuple[str, ...]) -> str | None:
        value = query.get(name)
        if value is not None and value not in allowed:
            raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}")
        return value

    raw_limit = query.get("limit", "50")
    if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return Filters(
        since=when(query.get("since"), "since"),
        until=when(query.get("until"), "until"),
        verdict=choice("verdict", tuple(Verdict)),
        source=choice("source", tuple(DecisionSource)),
        did=text("did"),
        cid=text("cid"),
        sha256=text("sha256", re.compile(SHA256)),
        rule=text("rule"),
        shadow=flag(query, "shadow"),
        limit=int(raw_limit),
    )


def when(raw: str | None, name: str) -> datetime | None:
    """A duration (``30m``, ``24h``, ``7d``: that long ago) or an RFC 3339 date-time."""
    if raw is None:
        return None
    if _DURATION.match(raw):
        return parse_when(raw)
    try:
        value = datetime.fromisoformat(raw.upper())
    except ValueError:
        raise InvalidRequest(
            f"{name} must be a duration like 30m, 24h, 7d or an RFC 3339 date-time"
        ) from None
    if value.tzinfo is None or "T" not in raw.upper():
        raise InvalidRequest(f"{name}: an RFC 3339 date-time has a time and a zone (Z or ±hh:mm)")
    return value


def decision_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in WITHHELD_COLUMNS}
