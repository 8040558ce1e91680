"""The native paths (grey images by a table, colour by Pillow's F conversion) give pdqhash's own hash and
quality, bit for bit."""

from __future__ import annotations

import numpy as np
import pdqhash
import pytest
from PIL import Image

from gate.hashing import pdq_native
from gate.hashing.decode import rgb_luma
from gate.hashing.pdq import pdq_hashes, to_hex
from tests.unit.hashing.corpus import photo


def _grey(name: str, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(photo(name).convert("L").resize(size, Image.Resampling.BICUBIC))


def _reference(grey: np.ndarray) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.repeat(grey[:, :, None], 3, axis=2))
    return to_hex(bits), int(quality)


def test_the_native_path_is_in_use_with_the_pinned_pdqhash() -> None:
    # If a pdqhash upgrade moves the symbol or changes its result, the gate silently falls back to
    # pdqhash.compute (correct, ~1 ms slower per image); this test is what says so.
    assert pdq_native.available()


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("coffee.png", (630, 630)),
        ("astronaut.png", (513, 640)),
        ("chelsea.png", (200, 133)),
        ("camera.png", (64, 64)),
    ],
)
def test_grey_hash_and_quality_equal_pdqhash(name: str, size: tuple[int, int]) -> None:
    grey = _grey(name, size)
    found = pdq_native.pdq_of_luma(pdq_native.LUMA[grey], dihedral=False)
    assert found is not None
    (bits,), quality = found
    assert (to_hex(bits), quality) == _reference(grey)


def test_a_flat_image_gets_pdqhash_quality_too() -> None:
    flat = np.full((300, 300), 128, np.uint8)
    found = pdq_native.pdq_of_luma(pdq_native.LUMA[flat], dihedral=False)
    assert found is not None
    assert (to_hex(found[0][0]), found[1]) == _reference(flat)


def test_pdq_hashes_of_a_grey_image_with_a_slow_width_is_still_pdqhash_s_hash() -> None:
    # Width 768 (a multiple of 256) goes through the transposed path as well.
    grey = _grey("coffee.png", (768, 600))
    (found,), quality = pdq_hashes(grey)
    assert (found.hex, quality) == _reference(grey)


def test_pillows_luma_is_pdqhashs_for_every_colour() -> None:
    # What makes colour frames' and colour images' hashes pdqhash's own (gate/hashing/decode.py).
    for start in range(0, 1 << 24, 1 << 20):  # all 2^24 colours, a sixteenth at a time
        v = np.arange(start, start + (1 << 20), dtype=np.uint32)
        rgb = np.stack([v >> 16, (v >> 8) & 255, v & 255], axis=-1).astype(np.uint8).reshape(1024, 1024, 3)
        # pdqhash's own expression (uint8 times Python floats: float64), then float32.
        want = (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.float32)
        assert np.array_equal(rgb_luma(rgb), want)


@pytest.mark.parametrize("dihedral", [False, True])
def test_a_colour_image_gets_pdqhashs_hash_and_quality(dihedral: bool) -> None:
    rgb = np.asarray(photo("coffee.png").resize((500, 333), Image.Resampling.BICUBIC))
    ours, quality = pdq_hashes(rgb, dihedral=dihedral)
    if dihedral:
        vectors, want_quality = pdqhash.compute_dihedral(rgb)
    else:
        vector, want_quality = pdqhash.compute(rgb)
        vectors = [vector]
    assert ([p.hex for p in ours], quality) == ([to_hex(v) for v in vectors], want_quality)


# The bench corpus's sizes up to 1 MP (hashed at full resolution), widths that are multiples of 128 (whose
# column passes read padded rows), and odd sizes: portrait, 1 MP exactly, long and thin, the smallest
# hashable side (5) and under it, and 64×64 (which pdqhash takes as already downsampled).
SIZES = [
    (256, 192),
    (1024, 768),
    (768, 1024),
    (1023, 767),
    (1000, 750),
    (1280, 800),
    (1024, 1024),
    (640, 480),
    (512, 384),
    (128, 2048),
    (2048, 128),
    (257, 129),
    (7, 5),
    (5, 7),
    (4, 9),
    (64, 64),
    (63, 65),
]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("channels", [1, 3])
def test_full_resolution_hashes_are_pdqhashs_at_every_size(size: tuple[int, int], channels: int) -> None:
    # The blur step by step (gate/hashing/pdq_native.py) against pdqhash's whole-image entry points.
    im = photo("astronaut.png").resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(im.convert("L") if channels == 1 else im.convert("RGB"))
    rgb = np.ascontiguousarray(np.stack([pixels] * 3, axis=2) if channels == 1 else pixels)
    vector, want_quality = pdqhash.compute(rgb)
    (found,), quality = pdq_hashes(pixels)
    assert (found.hex, quality) == (to_hex(vector), want_quality)
    vectors, want_quality = pdqhash.compute_dihedral(rgb)
    turned, quality = pdq_hashes(pixels, dihedral=True)
    assert ([p.hex for p in turned], quality) == ([to_hex(v) for v in vectors], want_quality)


@pytest.mark.parametrize("size", [(300, 200), (512, 300), (64, 64), (4, 9)])
def test_the_luma_is_only_read(size: tuple[int, int]) -> None:
    # A frame's luma is read again after its hash (a repeat of it in an animation is known by it).
    luma = pdq_native.LUMA[_grey("coffee.png", size)]
    assert luma.flags.writeable
    before = luma.copy()
    assert pdq_native.pdq_of_luma(luma, dihedral=True) is not None
    assert np.array_equal(luma, before)


def test_a_read_only_luma_is_not_blurred_in_place() -> None:
    # numpy's view of Pillow's pixels is read-only, its memory an immutable bytes: pdqhash gets a copy.
    luma = rgb_luma(np.asarray(photo("coffee.png").resize((300, 200))))
    assert not luma.flags.writeable
    before = luma.copy()
    assert pdq_native.pdq_of_luma(luma, dihedral=False) is not None
    assert np.array_equal(luma, before)
