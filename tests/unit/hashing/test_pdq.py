"""PDQ as HMA computes it (threatexchange), and the gate's fixes for images HMA gets wrong."""

from __future__ import annotations

import io

import numpy as np
import pdqhash
import pytest
from PIL import Image
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.hashing.pdq import TRANSFORMS, pdq_hashes, to_hex
from tests.unit.hashing.corpus import PHOTOS, bits, encode, gif, photo, resized

OPTIONS = HashOptions()

# (photo, size): widths that are and are not multiples of 256 (the transpose trick), grey and colour.
FULL_RES_CASES = [
    ("astronaut.png", (512, 512)),
    ("coffee.png", (600, 400)),
    ("chelsea.png", (1024, 681)),
    ("rocket.jpg", (768, 512)),
    ("camera.png", (256, 300)),
    ("retina.jpg", (1000, 1000)),
]


@pytest.mark.parametrize(
    ("name", "size"), FULL_RES_CASES, ids=[f"{n}-{s[0]}x{s[1]}" for n, s in FULL_RES_CASES]
)
def test_full_resolution_equals_threatexchange(name: str, size: tuple[int, int]) -> None:
    body = encode(photo(name).resize(size, Image.Resampling.BICUBIC), "PNG")
    expected_hex, expected_quality = pdq_from_bytes(body)
    hashes = hash_bytes(body, OPTIONS, full_resolution=True)
    assert [(p.hex, p.quality, p.transform) for p in hashes.pdq] == [
        (expected_hex, expected_quality, "original")
    ]


# Up to 1 MP the gate promises HMA's hash bit for bit (issue 18 made that path cheaper, not different):
# the bench corpus's 1024×768 and 256×192, and odd sizes, in every format a client sends.
UP_TO_1MP = [
    (1024, 768),
    (256, 192),
    (768, 1024),
    (1023, 767),
    (1000, 750),
    (1024, 1024),
    (640, 480),
    (129, 257),
]


@pytest.mark.parametrize("size", UP_TO_1MP, ids=[f"{w}x{h}" for w, h in UP_TO_1MP])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "RGBA"])
def test_up_to_1_mp_every_format_gets_threatexchanges_hash(size: tuple[int, int], fmt: str) -> None:
    im = photo("coffee.png").resize(size, Image.Resampling.BICUBIC)
    if fmt == "RGBA":
        im.putalpha(200)
        body = encode(im, "PNG")
    else:
        body = gif(im) if fmt == "GIF" else encode(im, fmt)
    hashes = hash_bytes(body, OPTIONS)
    want_hex, want_quality = pdq_from_bytes(body)
    # A GIF is a palette image: threatexchange's hash is the gate's as-HMA variant (palette indices).
    found = hashes.pdq[-1] if fmt == "GIF" else hashes.pdq[0]
    assert (found.hex, found.quality) == (want_hex, want_quality)
    if fmt == "GIF":  # and the picture's own hash is pdqhash's of its RGB pixels
        vector, quality = pdqhash.compute(np.asarray(Image.open(io.BytesIO(body)).convert("RGB")))
        assert (hashes.pdq[0].hex, hashes.pdq[0].quality) == (to_hex(vector), quality)


def test_images_the_fast_path_does_not_shrink_equal_threatexchange() -> None:
    # Short side under 1024 px: nothing to reduce, so the fast path is HMA's hash bit for bit.
    body = encode(resized("coffee.png", 900), "PNG")
    assert hash_bytes(body, OPTIONS).pdq[0].hex == pdq_from_bytes(body)[0]


@pytest.mark.parametrize("width", [256, 512, 1024, 1280])
@pytest.mark.parametrize("channels", [1, 3])
def test_transpose_trick_is_bit_identical(width: int, channels: int) -> None:
    im = photo("astronaut.png").resize((width, 300), Image.Resampling.BICUBIC)
    pixels = np.asarray(im.convert("L") if channels == 1 else im)
    rgb = np.ascontiguousarray(np.stack([pixels] * 3, axis=2) if channels == 1 else pixels)
    vector, quality = pdqhash.compute(rgb)
    ours, our_quality = pdq_hashes(pixels)
    assert (ours[0].hex, our_quality) == (to_hex(vector), quality)
    vectors, _ = pdqhash.compute_dihedral(rgb)
    dihedral, _ = pdq_hashes(pixels, dihedral=True)
    assert [(p.transform, p.hex) for p in dihedral] == [
        (name, to_hex(v)) for name, v in zip(TRANSFORMS, vectors, strict=True)
    ]


def _rgb_reference(im: Image.Image) -> str:
    """HMA's hash of the same picture once it is plain 8-bit RGB."""
    return pdq_from_bytes(encode(im.convert("RGB"), "PNG"))[0]


@pytest.mark.parametrize("name", ["coffee.png", "astronaut.png"])
@pytest.mark.parametrize("mode", ["CMYK", "P", "1", "LA", "RGBA", "I;16"])
def test_other_modes_hash_like_their_rgb_picture(name: str, mode: str) -> None:
    base = resized(name, 600)
    if mode == "CMYK":
        body = encode(base.convert("CMYK"), "JPEG", quality=95)
        with Image.open(__import__("io").BytesIO(body)) as decoded:
            reference = _rgb_reference(decoded)
    elif mode == "P":
        im = base.convert("P", palette=Image.Palette.ADAPTIVE)
        body, reference = encode(im, "PNG"), _rgb_reference(im)
    elif mode == "1":
        im = base.convert("1")
        body, reference = encode(im, "PNG"), _rgb_reference(im)
    elif mode == "LA":
        im = base.convert("LA")
        body, reference = encode(im, "PNG"), _rgb_reference(im.convert("L"))
    elif mode == "RGBA":
        im = base.convert("RGBA")
        im.putalpha(128)
        body, reference = encode(im, "PNG"), _rgb_reference(base)
    else:
        grey = np.asarray(base.convert("L")).astype(np.uint16) * 257  # full 16-bit range
        body = encode(Image.fromarray(grey), "TIFF")
        reference = _rgb_reference(base.convert("L"))
    hashes = hash_bytes(body, OPTIONS, full_resolution=True)
    assert hashes.unhashable is None
    assert bits(hashes.pdq[0].hex, reference) <= 2
    assert hashes.pdq[0].quality >= 50


def test_hma_gets_palette_and_cmyk_wrong_and_the_gate_does_not() -> None:
    # The reason for the conversion: threatexchange hashes palette indices as grey levels.
    im = resized("coffee.png", 600).convert("P", palette=Image.Palette.ADAPTIVE)
    body = encode(im, "PNG")
    reference = _rgb_reference(im)
    assert bits(pdq_from_bytes(body)[0], reference) > 16
    assert bits(hash_bytes(body, OPTIONS).pdq[0].hex, reference) <= 2


@pytest.mark.parametrize(
    ("transpose", "name"),
    [
        (Image.Transpose.ROTATE_90, "rotate90"),
        (Image.Transpose.ROTATE_180, "rotate180"),
        (Image.Transpose.ROTATE_270, "rotate270"),
        (Image.Transpose.FLIP_LEFT_RIGHT, None),
        (Image.Transpose.FLIP_TOP_BOTTOM, None),
        (Image.Transpose.TRANSPOSE, None),
        (Image.Transpose.TRANSVERSE, None),
    ],
)
@pytest.mark.parametrize("photo_name", PHOTOS[:3])
def test_dihedral_catches_rotated_and_mirrored_copies(
    transpose: Image.Transpose, name: str | None, photo_name: str
) -> None:
    original = resized(photo_name, 800)
    banked = hash_bytes(encode(original, "JPEG"), HashOptions(dihedral=True))
    assert [p.transform for p in banked.pdq] == list(TRANSFORMS)
    upload = hash_bytes(encode(original.transpose(transpose), "JPEG"), OPTIONS)
    (plain,) = upload.pdq
    best = min(banked.pdq, key=lambda p: bits(p.hex, plain.hex))
    assert bits(best.hex, plain.hex) <= 16
    assert bits(banked.pdq[0].hex, plain.hex) > 31  # without dihedral it would be missed
    if name is not None:  # PDQ's naming of the flips is its own; rotations are unambiguous
        assert best.transform == name
