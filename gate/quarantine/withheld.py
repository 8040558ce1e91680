"""Blobs the gate withholds from ``com.atproto.sync.getBlob``: everything it rejected, quarantined or
confirmed, so a blob that reached the PDS by another path (an older upload, a direct connection, a
migration) cannot be served through the gate.

The set holds SHA-256 digests, not CID strings: the PDS parses the ``cid`` parameter (base32, base58btc,
base36, a v0 ``Qm…`` CID), so one blob has many spellings. Any CID whose multihash is a blocked SHA-256
is withheld whatever its codec or version — over-withholding is harmless, under-withholding is a bypass.
The set is in memory (a lookup costs one dict probe), filled by the pipeline as it blocks and refreshed
from Postgres (``EvidenceStore.blocked_sha256``) in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from gate import metrics
from gate.answers import xrpc_json

log = logging.getLogger(__name__)

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
SHA2_256 = 0x12

# What the PDS answers for a blob it does not have (InvalidRequestError('Blob not found') in
# @atproto/pds api/com/atproto/sync/getBlob.js): status 400, this body.
NOT_FOUND_STATUS = 400
NOT_FOUND_BODY = {"error": "InvalidRequest", "message": "Blob not found"}


def _b32(text: str) -> bytes:
    bits = value = 0
    out = bytearray()
    for ch in text.lower().rstrip("="):
        value = (value << 5) | _B32.index(ch)
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((value >> bits) & 0xFF)
    return bytes(out)


def _base_n(text: str, alphabet: str) -> bytes:
    num = 0
    for ch in text:
        num = num * len(alphabet) + alphabet.index(ch)
    zeros = len(text) - len(text.lstrip(alphabet[0]))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\0" * zeros + body


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def cid_sha256(cid: str) -> str | None:
    """The SHA-256 digest (hex) a CID string names, or None when it names none / does not parse."""
    text = cid.strip()
    try:
        if text.startswith("Qm") and len(text) == 46:
            raw = _base_n(text, _B58)  # CIDv0: the bare multihash
        elif text[:1] in ("b", "B"):
            raw = _b32(text[1:])
        elif text[:1] == "z":
            raw = _base_n(text[1:], _B58)
        elif text[:1] in ("k", "K"):
            raw = _base_n(text[1:].lower(), _B36)
        elif text[:1] in ("f", "F"):
            raw = bytes.fromhex(text[1:])
        else:
            return None
        pos = 0
        if raw[:1] != bytes([SHA2_256]):  # CIDv1: version, codec, then the multihash
            _, pos = _varint(raw, pos)
            _, pos = _varint(raw, pos)
        code, pos = _varint(raw, pos)
        length, pos = _varint(raw, pos)
        digest = raw[pos : pos + length]
    except (ValueError, IndexError):
        return None
    if code != SHA2_256 or length != 32 or len(digest) != 32:
        return None
    return digest.hex()


class WithheldBlobs:
    def __init__(self) -> None:
        self._blocked: set[str] = set()
        # Blocked here but not yet seen in Postgres (the decision row is written after the answer): a
        # refresh keeps them until a load contains them, so a refresh racing the write cannot drop one.
        self._recent: set[str] = set()

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._blocked

    def __len__(self) -> int:
        return len(self._blocked)

    def add(self, sha256: str) -> None:
        self._blocked.add(sha256)
        self._recent.add(sha256)
        metrics.WITHHELD_BLOBS.set(len(self._blocked))

    def discard(self, sha256: str) -> None:
        """A release: the blob may be served again (until the next refresh says otherwise)."""
        self._blocked.discard(sha256)
        self._recent.discard(sha256)
        metrics.WITHHELD_BLOBS.set(len(self._blocked))

    def withholds(self, cids: Iterable[str]) -> bool:
        """True when any of a getBlob request's ``cid`` parameters names a blocked blob."""
        return any((sha := cid_sha256(v)) is not None and sha in self._blocked for v in cids)

    async def refresh(self, load: Callable[[], Awaitable[set[str]]]) -> None:
        fresh = await load()
        self._recent -= fresh  # durable now: the database speaks for them from here on
        self._blocked = fresh | self._recent
        metrics.WITHHELD_BLOBS.set(len(self._blocked))

    async def watch(self, load: Callable[[], Awaitable[set[str]]], interval: float) -> None:
        """Refresh until cancelled. A failing database keeps the last set (never an empty one)."""
        failing = False
        while True:
            try:
                await self.refresh(load)
                if failing:
                    log.info("withheld blobs: refreshed again (%d blocked)", len(self._blocked))
                failing = False
            except Exception as exc:  # keep serving the last known set
                if not failing:
                    log.error(
                        "withheld blobs: refresh failed (%s); keeping %d", type(exc).__name__, len(self)
                    )
                failing = True
            await asyncio.sleep(interval)


async def not_found() -> web.Response:
    metrics.WITHHELD_REQUESTS.inc()
    return xrpc_json(NOT_FOUND_BODY, NOT_FOUND_STATUS)
