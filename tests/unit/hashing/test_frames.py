"""Every frame a viewer could show is hashed, within the policy's frame and pixel budget."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.hashing.pdq import pdq_hashes, pdq_of_downsample
from gate.hashing.pdq_downsample import band, downsample
from gate.types import Hashes, Unhashable, Variant
from tests.support.media import TEN_MS_FIRST, exif, save
from tests.unit.hashing.animations import (
    SIZE,
    banned,
    clean,
    first_frame_with_its_own_palette,
    local_palettes,
    one_palette,
)
from tests.unit.hashing.corpus import bits, encode, resized

OPTIONS = HashOptions()


def reference() -> str:
    return hash_bytes(encode(banned(), "PNG"), OPTIONS).pdq[0].hex


def closest(hashes: Hashes, target: str) -> tuple[int, int]:
    """(bits, frame) of the upload's hash nearest ``target``."""
    return min((bits(p.hex, target), p.frame) for p in hashes.pdq)


TEN_MS = TEN_MS_FIRST
# (name, body, media type, frames, the frame the banned picture is in)
CONTAINERS = [
    ("gif", lambda: save(clean(), "GIF", banned(), **TEN_MS), "image/gif", 2, 1),
    ("apng", lambda: save(clean(), "PNG", banned(), **TEN_MS), "image/png", 2, 1),
    ("webp", lambda: save(clean(), "WEBP", banned(), lossless=True, **TEN_MS), "image/webp", 2, 1),
    ("avif", lambda: save(clean(), "AVIF", banned(), quality=90, **TEN_MS), "image/avif", 2, 1),
    # An APNG's default image outside the animation: shown by every viewer without APNG support.
    ("apng-default", lambda: save(banned(), "PNG", clean(), clean(), default_image=True), "image/png", 3, 0),
    ("mpo", lambda: save(clean(), "MPO", banned()), "image/jpeg", 2, 1),
    ("tiff-pages", lambda: save(clean(), "TIFF", banned()), "image/tiff", 2, 1),
    ("heif-images", lambda: save(clean(), "HEIF", banned(), quality=90), "image/heic", 2, 1),
    (
        "ico-sizes",
        lambda: save(
            clean().resize((256, 256)), "ICO", banned().resize((64, 64)), sizes=[(64, 64), (256, 256)]
        ),
        "image/x-icon",
        2,
        1,
    ),
]


@pytest.mark.parametrize(
    ("make", "media_type", "frames", "where"),
    [row[1:] for row in CONTAINERS],
    ids=[row[0] for row in CONTAINERS],
)
def test_the_banned_picture_is_found_in_whichever_frame_it_hides(
    make: Any, media_type: str, frames: int, where: int
) -> None:
    hashes = hash_bytes(make(), OPTIONS)
    assert hashes.media_types == (media_type,)
    assert hashes.frames == frames
    assert hashes.unhashable is None
    distance, frame = closest(hashes, reference())
    assert frame == where
    assert distance <= 16  # the ICO entry is a 64 px thumbnail; the others are within a few bits
    assert hashes.pdq[0].frame == 0 and hashes.pdq[0].variant is Variant.STORED  # HMA's hash first


def test_identical_frames_are_hashed_once() -> None:
    a, b = clean(), banned()
    hashes = hash_bytes(save(a, "GIF", b, a, b, duration=50), OPTIONS)
    assert hashes.frames == 4
    pictures = [p.frame for p in hashes.pdq if p.variant is Variant.STORED]
    assert pictures == [0, 1]  # frames 2 and 3 repeat them


def test_a_frame_is_skipped_only_when_each_of_its_hashes_is_already_there() -> None:
    # PDQ's blur leaves some rows of a 500 px side unread; read upside down (EXIF orientation 4), the
    # picture's displayed hash reads them. A frame that differs from the first only there has the
    # first's stored hash, not its displayed one: it is hashed. A frame repeating the first is not.
    first = resized("coffee.png", 600).resize((600, 500))
    rows = band(500, 500, 1)
    unread = sorted(set(range(500)) - set(rows.index[rows.weights > 0].tolist()))
    assert unread and all(499 - r in rows.index[rows.weights > 0] for r in unread)
    lines = np.array(first)
    lines[unread] = 255
    hashes = hash_bytes(save(first, "PNG", Image.fromarray(lines), first, exif=exif(4), duration=50), OPTIONS)
    assert hashes.frames == 3
    assert [(p.frame, p.variant) for p in hashes.pdq] == [
        (0, Variant.STORED),
        (0, Variant.DISPLAYED),
        (1, Variant.DISPLAYED),
    ]


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("GIF", {"duration": 50}), ("PNG", {"duration": 50}), ("WEBP", {"duration": 50, "lossless": True})],
    ids=["gif", "apng", "webp"],
)
def test_past_max_frames_the_upload_is_too_many_frames(fmt: str, params: dict[str, Any]) -> None:
    pictures = [resized(name, 300).resize((300, 200)) for name in ("coffee.png", "chelsea.png", "rocket.jpg")]
    body = save(pictures[0], fmt, pictures[1], pictures[2], banned().resize((300, 200)), **params)
    assert hash_bytes(body, HashOptions(max_frames=4)).unhashable is None
    hashes = hash_bytes(body, HashOptions(max_frames=3))
    assert hashes.unhashable is Unhashable.TOO_MANY_FRAMES
    assert "max_frames" in (hashes.unhashable_detail or "")
    # The frames read before the cap stay hashed (a match there still counts), none past it.
    assert all(p.frame < 3 for p in hashes.pdq)


def test_a_declared_frame_count_over_the_cap_is_refused_before_decoding() -> None:
    body = save(clean(), "PNG", banned(), clean(), duration=50)  # acTL says 3 frames
    hashes = hash_bytes(body, HashOptions(max_frames=2))
    assert hashes.unhashable is Unhashable.TOO_MANY_FRAMES
    assert "3 frames declared" in (hashes.unhashable_detail or "")
    assert hashes.pdq == () and hashes.frames == 0


def test_frames_after_the_first_share_a_pixel_budget() -> None:
    body = save(clean(), "GIF", banned(), clean().rotate(180), duration=50)
    frame = SIZE[0] * SIZE[1]
    assert hash_bytes(body, HashOptions(max_total_pixels=2 * frame)).unhashable is None
    hashes = hash_bytes(body, HashOptions(max_total_pixels=2 * frame - 1))
    assert hashes.unhashable is Unhashable.TOO_MANY_FRAMES
    assert "max_total_pixels" in (hashes.unhashable_detail or "")
    # The first frame is bounded by the bomb limit alone.
    assert hash_bytes(encode(clean(), "PNG"), HashOptions(max_total_pixels=0)).unhashable is None


def test_a_flat_first_frame_does_not_make_the_upload_low_quality() -> None:
    flat = Image.new("RGB", SIZE, (40, 40, 40))
    hashes = hash_bytes(save(flat, "GIF", banned(), **TEN_MS), OPTIONS)
    assert hashes.unhashable is None
    assert [p.frame for p in hashes.pdq] == [1]
    only_flat = hash_bytes(save(flat, "GIF", Image.new("RGB", SIZE, (90, 90, 90)), **TEN_MS), OPTIONS)
    assert only_flat.unhashable is Unhashable.LOW_QUALITY


def test_a_truncated_animation_keeps_the_frames_it_has_and_is_unhashable() -> None:
    body = save(banned(), "PNG", clean(), **TEN_MS)
    hashes = hash_bytes(body[: len(body) * 3 // 4], OPTIONS)  # the second frame is cut short
    assert hashes.unhashable in (Unhashable.TRUNCATED, Unhashable.CORRUPT)
    assert closest(hashes, reference()) == (0, 0)


def test_dihedral_hashes_come_for_every_frame() -> None:
    hashes = hash_bytes(save(clean(), "GIF", banned(), **TEN_MS), HashOptions(dihedral=True))
    turned = [p for p in hashes.pdq if p.variant is not Variant.AS_HMA]  # (HMA's reading: not turned)
    per_frame = {f: [p.transform for p in turned if p.frame == f] for f in (0, 1)}
    assert all(len(names) == 8 and names[0] == "original" for names in per_frame.values())
    assert {p.variant for p in turned} == {Variant.STORED, Variant.DIHEDRAL}


@pytest.mark.parametrize("make", [local_palettes, one_palette], ids=["local-palettes", "one-palette"])
def test_every_gif_frame_is_hashed_as_composited_like_its_rgb_pixels(make: Any) -> None:
    # Later frames are read as their luma (gate/hashing/decode.py): the hashes are those of the RGB
    # pixels Pillow composites (disposal 2 and 3, transparency, partial frames), frame by frame.
    body = make()
    with Image.open(io.BytesIO(body)) as im:
        rgb = []
        for index in range(im.n_frames):  # type: ignore[attr-defined]  # Pillow types it on GIF and the other multi-frame formats only
            im.seek(index)
            rgb.append(np.asarray(im.convert("RGB")))
    assert len({frame.tobytes() for frame in rgb}) == len(rgb) == 5
    (first,), _ = pdq_hashes(rgb[0])
    later = [pdq_of_downsample(downsample(frame, *SIZE, 1))[0][0] for frame in rgb[1:]]
    expected = [first.hex, *(h.hex for h in later)]
    hashes = hash_bytes(body, OPTIONS)
    assert hashes.frames == 5
    stored = [(p.hex, p.frame) for p in hashes.pdq if p.variant is Variant.STORED]
    assert stored == [(h, expected.index(h)) for h in dict.fromkeys(expected)]


def test_a_later_gif_frame_is_read_through_the_global_table_when_the_first_had_its_own() -> None:
    # Pillow's RGB_AFTER_DIFFERENT_PALETTE_ONLY loading strategy would keep such frames in P and spare
    # the RGB compositing (~14 ms of a 100-frame 500 px GIF drawn with one table), but it reads a frame
    # without a local table through the colours of the frame before it rather than the global table
    # (Pillow 13): the banned second frame came out 118 bits from its hash. The gate keeps Pillow's
    # default strategy; this holds it to the picture viewers show.
    body, astronaut = first_frame_with_its_own_palette()
    with Image.open(io.BytesIO(body)) as im:
        im.seek(1)
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(astronaut.convert("RGB")))
    hashes = hash_bytes(body, OPTIONS)
    assert hashes.frames == 2
    distance, frame = closest(hashes, hash_bytes(encode(astronaut.convert("RGB"), "PNG"), OPTIONS).pdq[0].hex)
    assert frame == 1
    assert distance <= 2  # a later frame: PDQ's downsample path, within a bit or two of the exact hash
