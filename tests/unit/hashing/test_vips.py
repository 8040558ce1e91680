"""libvips decodes large still PNG, and large still WebP are decoded scaled by libwebp (gate/hashing/vips.py
decides, gate/hashing/webp.py calls libwebp); everything else, and every file either has a complaint
about, stays with the Pillow path and its verdict."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from gate.hashing import vips
from gate.hashing.hasher import Hasher, hash_bytes
from gate.hashing.options import HashOptions
from gate.types import Hashes, Unhashable, Variant
from tests.support.media import exif, oriented, save
from tests.unit.hashing.corpus import bits, encode, photo, resized

OPTIONS = HashOptions()
PILLOW = replace(OPTIONS, libvips=False)
PHONE = (4032, 3024)


def _reading(body: bytes) -> tuple[object, ...] | None:
    """What libvips makes of ``body`` (None: not libvips' to decode): the reduced pixels' shape, the
    scale and the orientation tag."""
    with Image.open(io.BytesIO(body)) as im:
        found = vips.reduced(im, body)
        if found is None:
            return None
        decoded, orientation = found
        assert (decoded.width, decoded.height) == im.size
        return decoded.pixels.shape, decoded.scale, orientation.tag if orientation else None


def _same_as_pillow(body: bytes) -> tuple[Hashes, Hashes]:
    fast, pillow = hash_bytes(body, OPTIONS), hash_bytes(body, PILLOW)
    assert fast.unhashable == pillow.unhashable, (fast.unhashable_detail, pillow.unhashable_detail)
    assert (fast.width, fast.height, fast.frames) == (pillow.width, pillow.height, pillow.frames)
    assert [(p.variant, p.transform) for p in fast.pdq] == [(p.variant, p.transform) for p in pillow.pdq]
    return fast, pillow


def test_libvips_loads_here() -> None:
    # pyvips-binary is a dependency: a machine without it still hashes (the Pillow path), but this one
    # must measure and test the libvips path.
    assert vips.available()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_a_large_png_is_decoded_by_libvips_within_bits_of_pillow(mode: str) -> None:
    body = encode(resized("coffee.png", 2400).convert(mode), "PNG")  # 2400 x 1600
    assert _reading(body) == (((534, 800, 3) if mode.startswith("RGB") else (534, 800)), 3, None)
    fast, pillow = _same_as_pillow(body)
    full = hash_bytes(body, OPTIONS, full_resolution=True)
    assert bits(fast.pdq[0].hex, full.pdq[0].hex) <= 4
    assert bits(fast.pdq[0].hex, pillow.pdq[0].hex) <= 4


def test_a_large_webp_is_decoded_scaled_by_libwebp() -> None:
    body = encode(photo("rocket.jpg").convert("RGB").resize(PHONE, Image.Resampling.BICUBIC), "WEBP")
    # 3024 // 512 is 5, but 5 divides neither side: 4 is the largest scale that averages whole blocks.
    assert _reading(body) == ((756, 1008, 3), 4, None)
    fast, _ = _same_as_pillow(body)
    full = hash_bytes(body, OPTIONS, full_resolution=True)
    assert bits(fast.pdq[0].hex, full.pdq[0].hex) <= 4


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _exif_after_pixels(png: bytes, tag: int) -> bytes:
    """The PNG with an eXIf chunk just before IEND, as some tools write it (Pillow writes it first)."""
    assert png[-12:-8] == b"\x00\x00\x00\x00" and png[-8:-4] == b"IEND"
    return png[:-12] + _chunk(b"eXIf", exif(tag)) + png[-12:]


@pytest.mark.parametrize("where", ["before", "after"])
def test_the_orientation_of_a_large_png_is_read_wherever_its_chunk_is(where: str) -> None:
    upright = resized("chelsea.png", 2400)
    if where == "before":
        body = oriented(upright, 6, "PNG", compress_level=1)
        assert _reading(body) == ((800, 532, 3), 3, 6)  # stored turned: 1596 x 2400
    else:
        body = _exif_after_pixels(
            save(upright.transpose(Image.Transpose.ROTATE_90), "PNG", compress_level=1), 6
        )
        assert _reading(body) is None  # Pillow reads that chunk only while decoding: Pillow's file
    fast, _ = _same_as_pillow(body)
    assert any(p.variant is Variant.DISPLAYED and p.transform == "rotate270" for p in fast.pdq)


def test_a_webp_tagged_with_an_orientation_keeps_it() -> None:
    body = oriented(resized("chelsea.png", 2400), 8, "WEBP", quality=80)
    assert _reading(body) == ((800, 532, 3), 3, 8)  # 1596 x 2400: 3 divides both
    fast, _ = _same_as_pillow(body)
    assert any(p.variant is Variant.DISPLAYED and p.transform == "rotate90" for p in fast.pdq)


def _palette_png() -> bytes:
    return encode(resized("coffee.png", 2400).convert("P", palette=Image.Palette.ADAPTIVE), "PNG")


def _sixteen_bit_png() -> bytes:
    grey = np.asarray(resized("coffee.png", 2400).convert("L")).astype(np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def _rgba_webp() -> bytes:
    im = resized("coffee.png", 2400).convert("RGBA")
    im.putalpha(Image.linear_gradient("L").resize(im.size))  # not opaque: the WebP keeps its alpha
    return encode(im, "WEBP")


def _animated_png() -> bytes:
    first = resized("coffee.png", 2400)
    return save(first, "PNG", resized("chelsea.png", 2400).resize(first.size), compress_level=1)


def _small_png() -> bytes:
    return encode(resized("coffee.png", 1024), "PNG")  # up to 1 MP: exactly HMA's hash


@pytest.mark.parametrize(
    "make",
    [_palette_png, _sixteen_bit_png, _rgba_webp, _animated_png, _small_png],
    ids=["palette PNG (HMA reads indices)", "16-bit PNG", "WebP with alpha", "APNG", "1 MP PNG"],
)
def test_what_libvips_leaves_to_pillow_is_hashed_exactly_as_before(make: object) -> None:
    assert callable(make)
    body = make()
    assert _reading(body) is None
    fast, pillow = _same_as_pillow(body)
    assert fast.pdq == pillow.pdq


def test_the_palette_pngs_hash_as_hma_reads_it_is_still_there() -> None:
    fast, _ = _same_as_pillow(_palette_png())
    assert any(p.variant is Variant.AS_HMA for p in fast.pdq)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_large_png_gets_pillows_verdict(cut: float) -> None:
    body = encode(resized("coffee.png", 2400), "PNG")
    short = body[: int(len(body) * cut)]
    assert _reading(short) is None  # no IEND: the chunk list is the Pillow path's to judge
    fast, _ = _same_as_pillow(short)
    assert fast.unhashable is not None


def test_a_corrupt_large_png_gets_pillows_verdict() -> None:
    body = bytearray(encode(resized("coffee.png", 2400), "PNG"))
    first_idat = body.index(b"IDAT") + 4
    body[first_idat + 100 : first_idat + 400] = bytes(300)  # the zlib stream broken, the chunks whole
    fast, _ = _same_as_pillow(bytes(body))
    assert fast.unhashable is not None


def test_a_corrupt_large_webp_gets_pillows_verdict() -> None:
    body = bytearray(encode(resized("coffee.png", 2400).convert("RGB"), "WEBP"))
    body[len(body) // 3 : len(body) // 3 + 2000] = bytes(2000)
    _same_as_pillow(bytes(body))


async def test_a_hashing_worker_decodes_with_libvips_as_the_gate_process_would() -> None:
    # libvips is loaded after the worker's fork (the forkserver never imports it): the worker's answer
    # is the one hash_bytes gives here, through libvips.
    bodies = [
        encode(resized("coffee.png", 2400), "PNG"),
        encode(photo("rocket.jpg").convert("RGB").resize(PHONE, Image.Resampling.BICUBIC), "WEBP"),
    ]
    assert all(_reading(body) is not None for body in bodies)
    hasher = Hasher(workers=1)
    try:
        for body in bodies:
            assert await hasher.hash(body, OPTIONS) == hash_bytes(body, OPTIONS)
    finally:
        await hasher.close()


async def test_the_workers_deadline_ends_a_decode_inside_libvips() -> None:
    slow = encode(photo("coffee.png").resize((6000, 4500)), "PNG")  # ~0.3 s of libvips' CPU time
    assert _reading(slow) is not None
    hasher = Hasher(workers=1, decode_timeout=0.05)
    try:
        await hasher.warm_up()  # libvips loaded before the clock starts
        hashes = await hasher.hash(slow, OPTIONS)
        assert hashes.pdq == () and hashes.unhashable is Unhashable.CORRUPT
        assert "longer than 0.05 s" in (hashes.unhashable_detail or "")
        assert hashes.sha256 and hashes.size == len(slow)
    finally:
        await hasher.close()
