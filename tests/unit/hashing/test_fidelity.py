"""The fast path (JPEG draft / integer box reduce, short side ≥ 512 px, PDQ's downsample computed from
the reduced image) against full resolution.

Images up to 1 MP are hashed at full resolution; the 1024 px cases check that (0 bits).
Corpus: real photographs from the scikit-image wheel at 256, 1024 and 2048 px on the long side and
upscaled to a 12 MP phone size (4032×3024), each as JPEG, PNG, WebP and GIF. The requirement
(issue 2, part 4): a median of at most 8 bits and a maximum of at most 16 bits from the hash of the
same file decoded at full resolution.
"""

from __future__ import annotations

import statistics
from functools import cache

import numpy as np
import pytest
from PIL import Image

from gate.hashing.decode import decode
from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from tests.unit.hashing.corpus import bits, encode, gif, photo, resized

OPTIONS = HashOptions(min_pdq_quality=0)
FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
SIZES = (256, 1024, 2048)
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "retina.jpg", "camera.png")
PHONE_PHOTOS = ("coffee.png", "rocket.jpg")  # the 12 MP cases are the slow ones: two photos
PHONE = (4032, 3024)
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


def _body(im: Image.Image, fmt: str) -> bytes:
    return gif(im) if fmt == "GIF" else encode(im, fmt)


def _cases() -> list[tuple[str, str, str]]:
    cases = [(name, str(size), fmt) for name in PHOTOS for size in SIZES for fmt in FORMATS]
    return cases + [(name, "12MP", fmt) for name in PHONE_PHOTOS for fmt in FORMATS]


@cache
def _distances() -> dict[tuple[str, str, str], int]:
    found = {}
    for name, size, fmt in _cases():
        if size == "12MP":
            im = photo(name).convert("RGB").resize(PHONE, Image.Resampling.BICUBIC)
        else:
            im = resized(name, int(size))
        body = _body(im, fmt)
        fast = hash_bytes(body, OPTIONS)
        full = hash_bytes(body, OPTIONS, full_resolution=True)
        assert fast.pdq and full.pdq, (name, size, fmt, fast.unhashable_detail)
        found[(name, size, fmt)] = bits(fast.pdq[0].hex, full.pdq[0].hex)
    return found


def _report(distances: dict[tuple[str, str, str], int]) -> str:
    worst = sorted(distances.items(), key=lambda item: -item[1])[:8]
    return "worst: " + ", ".join(f"{'/'.join(case)}={d}" for case, d in worst)


@pytest.mark.slow
def test_fast_path_median_within_8_bits() -> None:
    distances = _distances()
    assert len(distances) == len(PHOTOS) * len(SIZES) * len(FORMATS) + len(PHONE_PHOTOS) * len(FORMATS)
    assert statistics.median(distances.values()) <= 8, _report(distances)
    # The same bound on the cases the fast path actually shrinks (over 1 MP), not diluted by the
    # small images hashed at full resolution.
    reduced = [d for (_, size, _), d in distances.items() if size in ("2048", "12MP")]
    assert statistics.median(reduced) <= 8, _report(distances)


@pytest.mark.slow
def test_fast_path_max_within_16_bits() -> None:
    distances = _distances()
    assert max(distances.values()) <= 16, _report(distances)


@pytest.mark.slow
def test_reduced_images_land_within_a_few_bits() -> None:
    # What the downsample computed from reduced pixels buys over the box resize it replaced (which
    # measured a median of 4 and a max of 8 bits over these): median 0, max 2 when written.
    distances = _distances()
    reduced = [d for (_, size, _), d in distances.items() if size in ("2048", "12MP")]
    assert statistics.median(reduced) <= 1, _report(distances)
    assert max(reduced) <= 4, _report(distances)


@pytest.mark.parametrize("fmt", FORMATS)
def test_large_images_really_take_the_fast_path(fmt: str) -> None:
    # Guard against a fidelity that holds only because nothing was reduced.
    body = _body(resized("coffee.png", 2048), fmt)  # 2048 x 1365
    decoded = decode(body, MEDIA_TYPES[fmt], max_pixels=OPTIONS.max_image_pixels)
    assert (decoded.width, decoded.height) == (2048, 1365)
    # Halved (JPEG by libjpeg, the others by an integer box reduce): the short side stays ≥ 512.
    assert decoded.scale == 2
    assert decoded.pixels.shape[:2] == (683, 1024)


@pytest.mark.parametrize("size", [(4032, 3024), (3024, 4032), (8000, 1000), (1100, 1000)])
def test_the_short_side_never_drops_below_512(size: tuple[int, int]) -> None:
    body = encode(Image.new("RGB", size, (90, 120, 150)), "JPEG")
    decoded = decode(body, "image/jpeg", max_pixels=OPTIONS.max_image_pixels)
    assert decoded.scale is not None
    assert min(decoded.pixels.shape[:2]) >= 512
    # ...and is halved no further than that allows.
    assert min(decoded.pixels.shape[:2]) < 1024 or decoded.scale == 1


def _mode_case(kind: str) -> bytes:
    base = resized("coffee.png", 1500)  # 1500 x 1000: over 1 MP, so the fast path applies
    if kind == "CMYK-JPEG":
        return encode(base.convert("CMYK"), "JPEG")
    if kind == "L-JPEG":
        return encode(base.convert("L"), "JPEG")
    if kind == "RGB-PROGRESSIVE":
        return encode(base, "JPEG", progressive=True)
    if kind == "RGB-MPO":  # a multi-picture JPEG (3D / burst cameras): the first picture is hashed
        return encode(base, "MPO", save_all=True, append_images=[resized("astronaut.png", 1500)])
    if kind == "I16-TIFF":
        return encode(Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257), "TIFF")
    mode, fmt = kind.split("-")
    im = base.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else base.convert(mode)
    return encode(im, {"HEIC": "HEIF"}.get(fmt, fmt))


@pytest.mark.parametrize(
    "kind",
    [
        "CMYK-JPEG",
        "L-JPEG",
        "I16-TIFF",
        "P-PNG",
        "1-PNG",
        "LA-PNG",
        "RGBA-PNG",
        "RGB-BMP",
        "RGB-HEIC",
        "RGB-AVIF",
        "RGB-PROGRESSIVE",
        "RGB-MPO",
    ],
)
def test_fast_path_on_every_mode_and_format(kind: str) -> None:
    body = _mode_case(kind)
    fast = hash_bytes(body, OPTIONS)
    full = hash_bytes(body, OPTIONS, full_resolution=True)
    assert fast.unhashable is None, fast.unhashable_detail
    assert (fast.width, fast.height) == (1500, 1000)
    assert bits(fast.pdq[0].hex, full.pdq[0].hex) <= 4  # 1500 x 1000: weighed at full resolution
