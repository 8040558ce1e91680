"""Reading an upload body the way the PDS does: limits first, Content-Encoding decoded, bombs refused.

The decoded bytes are what the gate hashes *and* what it forwards (with identity encoding), so the CID
the gate records is the CID the PDS stores. Every decoder is capped at the upload limit on its
*output*: a 100 KB gzip that expands to 10 GB is a 413 after ``limit + 1`` bytes, never an OOM.

Memory (issue 6): the body is held once. A declared length is read straight into one preallocated
buffer (``readexactly`` would hold the chunks *and* their join, twice the body, at its peak); a chunked
body grows one buffer in place. The buffer is a ``bytearray``: every consumer (hashlib, the sniffer,
Pillow via the hashing pool, the upstream client) takes any bytes-like object, and nothing mutates it
once read.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import cast

import brotli
from aiohttp import web

from gate.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gate.proxy.budget import Reservation

READ_CHUNK = 256 * 1024
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


async def _read_exactly(request: web.Request, length: int) -> bytes:
    """Exactly ``length`` body bytes into one buffer allocated up front (pages are only touched as
    bytes arrive, so a client that stops early has not cost the whole length)."""
    buffer = bytearray(length)
    view = memoryview(buffer)
    filled = 0
    while filled < length:
        chunk = await request.content.readany()
        if not chunk:
            raise InvalidRequest("request body ended before Content-Length")
        take = min(len(chunk), length - filled)  # aiohttp stops the payload at Content-Length anyway
        view[filled : filled + take] = chunk[:take] if take < len(chunk) else chunk
        filled += take
    view.release()
    return _as_body(buffer)


def _as_body(buffer: bytearray) -> bytes:
    # Typed as bytes for its consumers: it is never mutated once read, and each of them takes any
    # buffer (converting with bytes() would be the very copy this module avoids).
    return cast(bytes, buffer)


async def read_body(request: web.Request, limit: int, reservation: Reservation) -> bytes:
    """Read, cap and decode an upload body. Raises 400/413/415/503 GateErrors."""
    encodings = parse_encodings(request.headers.getall("Content-Encoding", []))
    length = request.content_length
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if length is None and not chunked:
        raise InvalidRequest("A request body is expected but none was provided")  # the PDS's words
    if length is not None:
        if length > limit:
            raise PayloadTooLarge()  # before reading a byte: the PDS never sees it either
        reservation.grow_to(length)
        data: bytes = await _read_exactly(request, length)
    else:
        buffer = bytearray()
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            if len(buffer) + len(chunk) > limit:
                raise PayloadTooLarge()
            reservation.grow_to(len(buffer) + len(chunk))
            buffer += chunk  # grows in place (realloc), amortised: no list of parts and no join
        data = _as_body(buffer)
    if encodings:
        data = decode(data, encodings, limit, reservation)
    return data
