"""Shared pieces of the fake HMA: its state records, HMA's error shapes, parameter checks, uploads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web
from PIL import UnidentifiedImageError
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

SIGNAL_TYPES = ("pdq", "video_md5")
BANK_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@dataclass
class Content:
    id: int
    bank: str
    signals: dict[str, str]
    enabled: bool = True


@dataclass
class Bank:
    name: str
    ratio: float = 1.0


def error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def unprocessable(missing: list[str]) -> web.Response:
    """A pydantic-style error list, as HMA answers a missing required query parameter."""
    detail = [{"loc": ["query", m], "msg": "field required", "type": "value_error.missing"} for m in missing]
    return web.json_response(detail, status=422)


def validate(signal_type: str, signal: str) -> str | None:
    if signal_type not in SIGNAL_TYPES:
        return f"No such SignalType '{signal_type}'"
    if signal_type == "pdq" and not re.match(r"^[0-9a-f]{64}$", signal):
        return "invalid signal: invalid PDQ hash"
    if signal_type == "video_md5" and not re.match(r"^[0-9a-f]{32}$", signal.strip().lower()):
        return f"invalid signal: {signal!r} is not a valid MD5 hash"
    return None


async def read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


async def one_file(request: web.Request) -> tuple[str | None, bytes]:
    """The single multipart file; its field name is the content type (photo or video)."""
    if not request.content_type.startswith("multipart/"):
        return None, b""
    reader = await request.multipart()
    found: list[tuple[str, bytes]] = []
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name in ("photo", "video"):
            found.append((part.name, bytes(await part.read())))
    return found[0] if len(found) == 1 else (None, b"")


def pdq_of_image(data: bytes) -> str | None:
    """HMA's own hasher (threatexchange, no RGB conversion): "" below quality 50, None if not an image."""
    try:
        pdq, quality = pdq_from_bytes(data)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return pdq if quality >= 50 else ""
