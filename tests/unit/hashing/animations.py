"""Animations for the frame tests: every way GIF, APNG and WebP frames are laid over each other."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from tests.support.media import TEN_MS_FIRST, save
from tests.unit.hashing.corpus import resized

SIZE = (400, 266)


def banned() -> Image.Image:
    return resized("astronaut.png", 400).resize(SIZE)


def clean() -> Image.Image:
    return resized("coffee.png", 400).resize(SIZE)


def composited() -> list[Image.Image]:
    """Five frames: a patch over the first, a frame with a hole (what lies under it shows), others."""
    coffee, astronaut, cat, rocket = (
        clean(),
        banned(),
        resized("chelsea.png", 400),
        resized("rocket.jpg", 400),
    )
    cat, rocket = cat.resize(SIZE), rocket.resize(SIZE)
    patched = coffee.copy()
    patched.paste(astronaut.crop((20, 30, 200, 170)), (20, 30))
    holed = cat.convert("RGBA")
    ImageDraw.Draw(holed).rectangle((40, 40, 220, 160), fill=(0, 0, 0, 0))
    last = rocket.copy()
    last.paste(cat.crop((100, 50, 260, 190)), (100, 50))
    return [
        coffee.convert("RGBA"),
        patched.convert("RGBA"),
        holed,
        rocket.convert("RGBA"),
        last.convert("RGBA"),
    ]


def local_palettes() -> bytes:  # each frame its own palette and transparent index, whole-canvas tiles
    first, *others = composited()
    return save(first, "GIF", *others, disposal=[1, 2, 3, 2, 1], duration=50, loop=0)


def one_palette() -> bytes:  # one palette: Pillow writes only the changed box of each frame
    frames = [
        f.convert("RGB").quantize(palette=clean().quantize(256), dither=Image.Dither.NONE)
        for f in composited()
    ]
    return save(frames[0], "GIF", *frames[1:], disposal=[1, 2, 3, 1, 1], duration=50, loop=0)


def first_frame_with_its_own_palette() -> tuple[bytes, Image.Image]:
    """Two frames drawn with one global colour table; then the first frame is given a local table of
    its own (the global one reversed: it shows a garbled picture), while the second, with the banned
    picture, is still drawn with the global table."""
    palette = banned().quantize(256)
    coffee, astronaut = (
        p.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE) for p in (clean(), banned())
    )
    body = save(coffee, "GIF", astronaut, palette=palette.getpalette(), optimize=False, **TEN_MS_FIRST)
    with Image.open(io.BytesIO(body)) as im:
        data = im.tile[0].offset  # after the first image descriptor (10 bytes) and its LZW code size
    flags = data - 2
    assert body[data - 11] == 0x2C and body[10] & 0x87 == 0x87 and not body[flags] & 0x80
    reversed_table = np.asarray(palette.getpalette(), np.uint8).reshape(256, 3)[::-1].tobytes()
    return body[:flags] + bytes([body[flags] | 0x87]) + reversed_table + body[flags + 1 :], astronaut


def pan(count: int, side: int = 240) -> list[Image.Image]:
    """``count`` distinct frames: a window sliding across a photo (the benchmark's GIF, smaller)."""
    wide = resized("chelsea.png", 2 * side).resize((2 * side, side))
    return [wide.crop((i * side // count, 0, i * side // count + side, side)) for i in range(count)]


def pan_gif() -> bytes:  # each frame its own colour table, as GIF tools quantize a video
    frames = [f.quantize(256, method=Image.Quantize.FASTOCTREE) for f in pan(30)]
    return save(frames[0], "GIF", *frames[1:], duration=40, loop=0)


def truncated_gif() -> bytes:
    body = pan_gif()
    return body[: len(body) * 2 // 3]


def apng() -> bytes:  # every dispose and blend op, over RGBA frames with holes
    first, *others = composited()
    return save(first, "PNG", *others, disposal=[0, 1, 2, 0, 1], blend=[0, 1, 1, 0, 1], duration=50)


def apng_default_image() -> bytes:
    first, *others = composited()
    return save(first, "PNG", *others, default_image=True, duration=50)


def webp_lossless() -> bytes:
    first, *others = composited()
    return save(first, "WEBP", *others, lossless=True, duration=50)


def webp_lossy() -> bytes:
    first, *others = (f.convert("RGB") for f in pan(20))
    return save(first, "WEBP", *others, quality=80, duration=40)
