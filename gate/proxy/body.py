"""Reading an upload body the way the PDS does: limits first, Content-Encoding decoded, bombs refused.

The decoded bytes are what the gate hashes *and* what it forwards (with identity encoding), so the CID
the gate records is the CID the PDS stores. Every decoder is capped at the upload limit on its
*output*: a 100 KB gzip that expands to 10 GB is a 413 after ``limit + 1`` bytes, never an OOM.

Memory: the body is held once, in one buffer grown in place as bytes arrive (``readexactly`` would
hold the chunks *and* their join, twice the body, at its peak), and reserved against the budget as it
grows. A declared length reserves and allocates nothing up front: a client that declares 100 MB and
sends one byte holds one byte (a preallocated ``bytearray(length)`` is zero-filled, so it costs the
whole length at once). The buffer is a ``bytearray``: every consumer (hashlib, the sniffer, Pillow via
the hashing pool, the upstream client) takes any bytes-like object, and nothing mutates it once read.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import brotli
from aiohttp import web

from gate import metrics
from gate.errors import (
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
    UnsupportedMediaType,
    XrpcError,
)
from gate.proxy.budget import Reservation
from gate.proxy.drain import Drain
from gate.proxy.pace import Pace, Reason
from gate.settings import Settings

DECODE_STEP = 1024 * 1024


def parse_encodings(headers: list[str]) -> list[str]:
    """``Content-Encoding`` values in the order they were applied; identity dropped; 415 if unknown."""
    codings = [c.strip().lower() for h in headers for c in h.split(",") if c.strip()]
    out: list[str] = []
    for coding in codings:
        if coding == "identity":
            continue
        if coding not in DECODERS:
            raise UnsupportedMediaType()
        out.append(coding)
    return out


def _zlib(data: bytes, limit: int, wbits: int) -> bytes:
    """Inflate, following gzip multi-member streams, never producing more than ``limit + 1`` bytes."""
    parts: list[bytes] = []
    produced = 0
    rest = data
    while True:
        d = zlib.decompressobj(wbits)
        chunk = rest
        while chunk:
            out = d.decompress(chunk, min(DECODE_STEP, limit + 1 - produced))
            parts.append(out)
            produced += len(out)
            if produced > limit:
                raise PayloadTooLarge()
            chunk = d.unconsumed_tail
            if d.eof:
                break
        if not d.eof:
            tail = d.flush()
            produced += len(tail)
            if produced > limit:
                raise PayloadTooLarge()
            raise InvalidRequest("truncated compressed body")
        rest = d.unused_data
        if not rest or wbits != 31:  # only gzip has members after the first
            return b"".join(parts)


def _gzip(data: bytes, limit: int) -> bytes:
    return _zlib(data, limit, 31)


def _deflate(data: bytes, limit: int) -> bytes:
    # HTTP "deflate" is zlib-wrapped; some clients send raw deflate: accept both, as browsers do.
    try:
        return _zlib(data, limit, 15)
    except zlib.error:
        return _zlib(data, limit, -15)


def _br(data: bytes, limit: int) -> bytes:
    d = brotli.Decompressor()
    parts = [d.process(data, output_buffer_limit=limit + 1)]
    produced = len(parts[0])
    while produced <= limit and not d.is_finished() and not d.can_accept_more_data():
        out = d.process(b"", output_buffer_limit=limit + 1 - produced)
        parts.append(out)
        produced += len(out)
    if produced > limit:
        raise PayloadTooLarge()
    if not d.is_finished():
        raise InvalidRequest("truncated compressed body")
    return b"".join(parts)


DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _br,
}


def decode(data: bytes, encodings: list[str], limit: int, reservation: Reservation) -> bytes:
    """Undo ``encodings`` (last applied first). Each decoded layer is reserved against the budget."""
    for coding in reversed(encodings):
        try:
            decoded = DECODERS[coding](data, limit)
        except (zlib.error, brotli.error):
            raise InvalidRequest(f"malformed {coding} body") from None
        reservation.grow_to(reservation.held + len(decoded))
        data = decoded
    return data


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    idle_timeout: float
    min_rate: int
    rate_grace: float

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        return cls(
            settings.max_upload_bytes,
            settings.body_idle_timeout,
            settings.body_min_rate,
            settings.body_rate_grace,
        )


class BodyReader:
    """Reads upload bodies under the limits and the pace (``gate.proxy.pace``) and, once the gate is
    stopping, the drain deadline (``gate.proxy.drain``)."""

    def __init__(self, limits: BodyLimits, drain: Drain | None = None) -> None:
        self.limits = limits
        self.drain = drain if drain is not None else Drain(0)

    async def read(self, request: web.Request, reservation: Reservation) -> bytes:
        """Read, cap and decode an upload body. Raises 400/408/413/415/503 XrpcErrors."""
        limit = self.limits.max_bytes
        encodings = parse_encodings(request.headers.getall("Content-Encoding", []))
        length = request.content_length
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if length is None and not chunked:
            raise InvalidRequest("A request body is expected but none was provided")  # the PDS's words
        if length is not None and length > limit:
            raise PayloadTooLarge()  # before reading a byte: the PDS never sees it either
        data = await self._receive(request, reservation)
        if length is not None and len(data) < length:
            raise InvalidRequest("request body ended before Content-Length")
        if encodings:
            data = decode(data, encodings, limit, reservation)
        return data

    async def _receive(self, request: web.Request, reservation: Reservation) -> bytes:
        """The body as it arrives: reserved and grown chunk by chunk, so a declared length costs
        nothing until its bytes come (aiohttp itself stops a body at its Content-Length)."""
        loop = asyncio.get_running_loop()
        limits = self.limits
        pace = Pace(limits.idle_timeout, limits.min_rate, limits.rate_grace)
        pace.start(loop.time())
        buffer = bytearray()
        while True:
            when, reason = pace.deadline()
            try:
                async with asyncio.timeout_at(when) as timeout:
                    with self.drain.bounding(timeout):
                        chunk = await request.content.readany()
            except TimeoutError:
                raise self._cut(reason) from None
            if not chunk:
                return _as_body(buffer)
            if len(buffer) + len(chunk) > limits.max_bytes:
                raise PayloadTooLarge()
            reservation.grow_to(len(buffer) + len(chunk))
            buffer += chunk  # grows in place (realloc), amortised: no list of parts and no join
            pace.arrived(len(chunk), loop.time())

    def _cut(self, reason: Reason) -> XrpcError:
        if self.drain.expired():
            metrics.SHUTDOWN_REFUSALS.labels("arriving").inc()
            return ShuttingDown()
        metrics.BODY_TIMEOUTS.labels(reason).inc()
        if reason == "idle":
            return RequestTimeout(f"no upload bytes for {self.limits.idle_timeout:g} s")
        return RequestTimeout(f"upload body slower than {self.limits.min_rate} bytes/s")


def _as_body(buffer: bytearray) -> bytes:
    # Typed as bytes for its consumers: it is never mutated once read, and each of them takes any
    # buffer (converting with bytes() would be the very copy this module avoids).
    return cast(bytes, buffer)
