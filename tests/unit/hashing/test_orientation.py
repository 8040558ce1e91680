"""The picture as displayed after its EXIF orientation is hashed beside the stored grid."""

from __future__ import annotations

import io

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageOps

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.hashing.orientation import ORIENTATIONS
from gate.hashing.pdq import TRANSFORMS, to_hex
from gate.types import Variant
from tests.support.media import STORED, exif, oriented, save
from tests.unit.hashing.corpus import PHOTOS, bits, encode, resized

OPTIONS = HashOptions()
TAGS = range(2, 9)


def tagged(im: Image.Image, tag: int) -> Image.Image:
    out = im.copy()
    out.info["exif"] = exif(tag)
    return out


@pytest.mark.parametrize("tag", TAGS)
def test_each_orientation_is_the_turn_pillow_applies(tag: int) -> None:
    """The mapping, checked pixel for pixel against ImageOps.exif_transpose (what viewers do)."""
    im = resized("chelsea.png", 120).crop((0, 0, 120, 77))  # odd, unequal sides: every turn differs
    shown = np.asarray(ImageOps.exif_transpose(tagged(im, tag)))
    assert np.array_equal(ORIENTATIONS[tag].view(np.asarray(im)), shown)


@pytest.mark.parametrize("tag", TAGS)
def test_each_orientation_names_the_pdq_transform_it_is(tag: int) -> None:
    """PDQ's dihedral name for each turn: the variant nearest PDQ's hash of the turned picture."""
    for name in PHOTOS[:3]:
        im = resized(name, 300)
        variants, _ = pdqhash.compute_dihedral(np.asarray(im))
        shown = to_hex(pdqhash.compute(np.asarray(ImageOps.exif_transpose(tagged(im, tag))))[0])
        nearest = min(zip(TRANSFORMS, variants, strict=True), key=lambda v: bits(to_hex(v[1]), shown))
        assert nearest[0] == ORIENTATIONS[tag].transform


def _displayed_reference(body: bytes) -> str:
    """PDQ's own full-resolution hash (HMA's) of the picture a viewer shows for these bytes."""
    with Image.open(io.BytesIO(body)) as im:
        shown = ImageOps.exif_transpose(im).convert("RGB")
    return to_hex(pdqhash.compute(np.ascontiguousarray(np.asarray(shown)))[0])


# (format, long side, most bits from PDQ's own hash of the displayed picture)
FILES = [("JPEG", 600, 0), ("JPEG", 2048, 6), ("PNG", 600, 0), ("PNG", 2048, 6), ("WEBP", 600, 0)]


@pytest.mark.parametrize(("fmt", "side", "most"), FILES, ids=[f"{f}-{s}" for f, s, _ in FILES])
@pytest.mark.parametrize("tag", TAGS)
def test_the_displayed_picture_is_hashed(fmt: str, side: int, most: int, tag: int) -> None:
    upright = resized("astronaut.png", side).crop((0, 0, side, side * 3 // 4))
    body = oriented(upright, tag, fmt)
    hashes = hash_bytes(body, OPTIONS)
    stored, displayed = hashes.pdq
    assert (stored.variant, stored.transform) == (Variant.STORED, "original")  # HMA's hash stays first
    assert (displayed.variant, displayed.transform) == (Variant.DISPLAYED, ORIENTATIONS[tag].transform)
    assert bits(displayed.hex, _displayed_reference(body)) <= most
    assert bits(displayed.hex, hash_bytes(encode(upright, fmt), OPTIONS).pdq[0].hex) <= most + 8
    assert bits(stored.hex, displayed.hex) > 31  # without it, the banked upright picture is missed


def test_tiff_is_handed_over_upright_and_hashed_once() -> None:
    # Pillow's TIFF reader applies the orientation itself and drops the tag: nothing is turned twice.
    upright = resized("astronaut.png", 600).crop((0, 0, 600, 450))
    body = oriented(upright, 6, "TIFF")
    (only,) = hash_bytes(body, OPTIONS).pdq
    assert bits(only.hex, _displayed_reference(body)) == 0


def test_the_stored_grid_hash_is_unchanged_by_the_tag() -> None:
    im = resized("coffee.png", 600)
    plain = hash_bytes(encode(im, "JPEG"), OPTIONS).pdq
    assert hash_bytes(encode(im, "JPEG", exif=exif(6)), OPTIONS).pdq[0] == plain[0]


@pytest.mark.parametrize(
    "metadata",
    [
        exif(1),
        exif(9),
        exif(0),
        b"Exif\x00\x00" + b"\xff" * 40,
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05",
    ],
    ids=["upright", "out-of-range", "zero", "garbage", "short-ifd"],
)
def test_no_usable_orientation_means_the_stored_grid_only(metadata: bytes) -> None:
    im = resized("coffee.png", 600)
    hashes = hash_bytes(encode(im, "JPEG", exif=metadata), OPTIONS)
    assert hashes.unhashable is None
    assert [p.variant for p in hashes.pdq] == [Variant.STORED]


def test_every_frame_of_an_oriented_animation_is_hashed_as_displayed() -> None:
    a, b = (resized(n, 400).crop((0, 0, 400, 300)) for n in ("astronaut.png", "coffee.png"))
    body = save(a.transpose(STORED[6]), "WEBP", b.transpose(STORED[6]), lossless=True, exif=exif(6))
    hashes = hash_bytes(body, OPTIONS)
    shown = {(p.frame, p.variant) for p in hashes.pdq}
    assert shown == {(0, Variant.STORED), (0, Variant.DISPLAYED), (1, Variant.STORED), (1, Variant.DISPLAYED)}
    upright_b = hash_bytes(encode(b, "PNG"), OPTIONS).pdq[0].hex
    assert min(bits(p.hex, upright_b) for p in hashes.pdq if p.frame == 1) <= 4
