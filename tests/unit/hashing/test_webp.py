"""Large still WebP decoded scaled by libwebp itself (gate/hashing/webp.py): the pixels libvips gave,
hashed within the fast path's bounds of full resolution; every other WebP stays with the Pillow path."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from gate.hashing import vips, webp
from gate.hashing.hasher import Hasher, hash_bytes
from gate.hashing.options import HashOptions
from gate.types import Hashes, Unhashable
from tests.support.media import save
from tests.unit.hashing.corpus import bits, encode, photo, resized

OPTIONS = HashOptions()
PILLOW = replace(OPTIONS, libvips=False)


def _scene(size: tuple[int, int]) -> Image.Image:
    return photo("rocket.jpg").convert("RGB").resize(size, Image.Resampling.BICUBIC)


def _reading(body: bytes) -> tuple[tuple[int, ...], int | None] | None:
    """The reduced pixels' shape and scale on the libwebp path; None: the Pillow path decodes."""
    with Image.open(io.BytesIO(body)) as im:
        found = vips.reduced(im, body)
    return None if found is None else (found[0].pixels.shape, found[0].scale)


def _same_verdict_as_pillow(body: bytes) -> tuple[Hashes, Hashes]:
    fast, pillow = hash_bytes(body, OPTIONS), hash_bytes(body, PILLOW)
    assert fast.unhashable == pillow.unhashable, (fast.unhashable_detail, pillow.unhashable_detail)
    assert (fast.width, fast.height, fast.frames) == (pillow.width, pillow.height, pillow.frames)
    return fast, pillow


def test_pillows_libwebp_loads_here() -> None:
    # Pillow's wheel ships it: a machine without it still hashes (libvips, then Pillow), but this one
    # must measure and test the direct path.
    assert webp.available()
    assert (webp.version() or "0").split(".")[0] == "1"


# (size, scale): phone sizes, odd sides a scale divides, and a lossless file.
SIZES = [((4032, 3024), 4), ((4000, 3000), 5), ((2205, 1575), 3), ((1575, 2205), 3), ((2997, 1998), 3)]


@pytest.mark.parametrize(("size", "scale"), SIZES, ids=[f"{w}x{h}" for (w, h), _ in SIZES])
def test_a_large_webp_decodes_scaled_as_libvips_did_within_bits_of_full_resolution(
    size: tuple[int, int], scale: int
) -> None:
    width, height = size
    body = encode(_scene(size), "WEBP")
    assert _reading(body) == ((height // scale, width // scale, 3), scale)
    direct = webp.scaled(body, width, height, scale)
    pyvips = vips._pyvips()
    assert direct is not None and pyvips is not None
    through_libvips = pyvips.Image.webpload_buffer(body, scale=1 / scale).numpy()[:, :, :3]
    assert np.array_equal(direct, through_libvips)  # the same libwebp rescaler, bit for bit
    fast, _ = _same_verdict_as_pillow(body)
    full = hash_bytes(body, OPTIONS, full_resolution=True)
    assert bits(fast.pdq[0].hex, full.pdq[0].hex) <= 4


def test_a_large_lossless_webp_takes_the_same_path() -> None:
    body = encode(resized("coffee.png", 2400), "WEBP", lossless=True, method=0)  # 2400 x 1600
    assert _reading(body) == ((800, 1200, 3), 2)  # 3 does not divide 1600
    fast, _ = _same_verdict_as_pillow(body)
    full = hash_bytes(body, OPTIONS, full_resolution=True)
    assert bits(fast.pdq[0].hex, full.pdq[0].hex) <= 4


def _alpha() -> bytes:
    im = _scene((2400, 1800)).convert("RGBA")
    im.putalpha(Image.linear_gradient("L").resize(im.size))  # not opaque: the WebP keeps its alpha
    return encode(im, "WEBP")


def _animated() -> bytes:
    first = _scene((2400, 1800))
    return save(first, "WEBP", first.transpose(Image.Transpose.ROTATE_180), quality=80, method=0)


def _indivisible() -> bytes:
    return encode(_scene((2401, 1601)), "WEBP")  # no scale of 2 or more divides both sides


def _small() -> bytes:
    return encode(_scene((1024, 1024)), "WEBP")  # up to 1 MP: exactly HMA's hash


def _narrow() -> bytes:
    return encode(_scene((8000, 60)), "WEBP")  # a side under MIN_REDUCED_SIDE


@pytest.mark.parametrize(
    "make",
    [_alpha, _animated, _indivisible, _small, _narrow],
    ids=["alpha", "animated", "sides no scale divides", "1 MP", "60 px tall"],
)
def test_what_libwebp_leaves_to_pillow_is_hashed_exactly_as_before(make: object) -> None:
    assert callable(make)
    body = make()
    assert _reading(body) is None
    fast, pillow = _same_verdict_as_pillow(body)
    assert fast.pdq == pillow.pdq


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_a_truncated_large_webp_gets_pillows_verdict(cut: float) -> None:
    body = encode(_scene((2400, 1800)), "WEBP")
    short = body[: int(len(body) * cut)]
    assert webp.scaled(short, 2400, 1800, 3) is None  # libwebp: not enough data
    fast, _ = _same_verdict_as_pillow(short)
    assert fast.unhashable is not None


def test_a_header_that_disagrees_with_pillows_is_not_decoded() -> None:
    body = encode(_scene((2400, 1800)), "WEBP")
    assert webp.scaled(body, 2400, 1800, 3) is not None
    assert webp.scaled(body, 2403, 1800, 3) is None  # another size than libwebp reads
    assert webp.scaled(body, 2400, 1800, 7) is None  # a scale that does not divide the sides
    assert webp.scaled(encode(_scene((2400, 1800)), "PNG"), 2400, 1800, 3) is None  # not a WebP


async def test_the_workers_deadline_ends_a_decode_inside_libwebp() -> None:
    slow = encode(_scene((6000, 4500)), "WEBP")  # ~0.1 s of libwebp's CPU time, at 1/6 scale
    assert _reading(slow) == ((750, 1000, 3), 6)
    hasher = Hasher(workers=1, decode_timeout=0.02)
    try:
        await hasher.warm_up()  # libwebp loaded before the clock starts
        hashes = await hasher.hash(slow, OPTIONS)
        assert hashes.pdq == () and hashes.unhashable is Unhashable.CORRUPT
        assert "longer than 0.02 s" in (hashes.unhashable_detail or "")
        assert hashes.sha256 and hashes.size == len(slow)
    finally:
        await hasher.close()
