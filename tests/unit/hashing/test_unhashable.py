"""Images the gate cannot hash come back with an explicit reason, never an exception or an empty hash."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.types import Unhashable
from tests.unit.hashing.corpus import bits, encode, gif, resized

OPTIONS = HashOptions()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height``: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _assert_unhashable(body: bytes, reason: Unhashable, options: HashOptions = OPTIONS) -> None:
    hashes = hash_bytes(body, options)
    assert hashes.is_image
    assert hashes.pdq == ()
    assert hashes.unhashable is reason
    assert hashes.unhashable_detail  # a short, non-empty explanation
    assert len(hashes.unhashable_detail) <= 160
    assert len(hashes.sha256) == 64  # the exact digests are there whatever happened


@pytest.mark.parametrize("long_side", [600, 2048])  # full resolution and the fast path
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "HEIF"])
def test_truncated(fmt: str, long_side: int) -> None:
    im = resized("coffee.png", long_side)
    body = gif(im) if fmt == "GIF" else encode(im, fmt)
    _assert_unhashable(body[: len(body) // 2], Unhashable.TRUNCATED)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_corrupt(fmt: str) -> None:
    im = resized("coffee.png", 600)
    body = bytearray(gif(im) if fmt == "GIF" else encode(im, fmt))
    body[len(body) // 3 : len(body) // 3 + 400] = b"\x00" * 400
    _assert_unhashable(bytes(body), Unhashable.CORRUPT)


@pytest.mark.parametrize(
    "body",
    [b"\xff\xd8\xff\xe0" + b"\x00" * 100, b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, b"GIF89a" + b"\xff" * 50],
    ids=["jpeg-magic", "png-magic", "gif-magic"],
)
def test_magic_bytes_then_garbage_is_corrupt(body: bytes) -> None:
    hashes = hash_bytes(body, OPTIONS)
    assert hashes.unhashable in (Unhashable.CORRUPT, Unhashable.TRUNCATED)
    assert hashes.pdq == ()
    assert hashes.unhashable_detail


def test_bomb_by_header_is_refused_before_decoding() -> None:
    # 100 000 × 100 000 = 10 gigapixels claimed by a 100-byte file: refused from the header alone.
    body = _png_header_only(100_000, 100_000)
    _assert_unhashable(body, Unhashable.BOMB)


def test_bomb_limit_comes_from_the_options() -> None:
    body = encode(resized("coffee.png", 600), "PNG")  # 600 × 400 = 240 000 pixels
    _assert_unhashable(body, Unhashable.BOMB, HashOptions(max_image_pixels=200_000))
    assert hash_bytes(body, HashOptions(max_image_pixels=240_000)).pdq  # at the limit: fine


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_flat_image_is_low_quality(fmt: str) -> None:
    body = encode(Image.new("RGB", (800, 600), (128, 128, 128)), fmt)
    _assert_unhashable(body, Unhashable.LOW_QUALITY)
    assert "quality" in (hash_bytes(body, OPTIONS).unhashable_detail or "")


def test_gentle_gradient_is_low_quality_but_a_lower_cutoff_accepts_it() -> None:
    ramp = np.tile(np.linspace(100, 110, 640, dtype=np.uint8), (480, 1))
    body = encode(Image.fromarray(ramp), "PNG")
    _assert_unhashable(body, Unhashable.LOW_QUALITY)
    (pdq,) = hash_bytes(body, HashOptions(min_pdq_quality=0)).pdq
    assert len(pdq.hex) == 64


@pytest.mark.parametrize(
    ("body", "media_type"),
    [
        (b"just some text, declared as image/png by the client", "application/octet-stream"),
        (b"%PDF-1.4\n" + b"x" * 100, "application/pdf"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 100, "video/mp4"),
        (b"", "application/octet-stream"),
    ],
    ids=["text", "pdf", "mp4", "empty"],
)
def test_non_images_get_digests_and_no_perceptual_hash(body: bytes, media_type: str) -> None:
    hashes = hash_bytes(body, OPTIONS)
    assert hashes.media_type == media_type
    assert not hashes.is_image
    assert hashes.pdq == ()
    assert hashes.unhashable is None  # not an image at all: the policy's "unscannable" case
    assert hashes.size == len(body)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_hash_like_the_png(fmt: str) -> None:
    im = resized("coffee.png", 600)
    hashes = hash_bytes(encode(im, fmt, quality=90), OPTIONS)
    assert hashes.media_type == ("image/heic" if fmt == "HEIF" else "image/avif")
    assert (hashes.width, hashes.height) == im.size
    assert bits(hashes.pdq[0].hex, hash_bytes(encode(im, "PNG"), OPTIONS).pdq[0].hex) <= 16
