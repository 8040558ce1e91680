"""Test images for the hashing tests, made from the photographs inside the scikit-image wheel."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

import skimage
from PIL import Image

DATA = Path(skimage.__file__).parent / "data"

# Varied content: a portrait, a still life, an animal, outdoor scenes, a medical image, a grey photo.
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "retina.jpg", "camera.png")


@cache
def photo(name: str) -> Image.Image:
    with Image.open(DATA / name) as im:
        return im.convert("RGB") if im.mode not in ("RGB", "L") else im.copy()


def resized(name: str, long_side: int) -> Image.Image:
    im = photo(name)
    scale = long_side / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, Image.Resampling.BICUBIC)


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG" and im.mode not in ("RGB", "L", "CMYK"):
        im = im.convert("RGB")
    defaults: dict[str, Any] = {"JPEG": {"quality": 85}, "WEBP": {"quality": 80, "method": 0}}.get(fmt, {})
    if fmt == "PNG":
        defaults = {"compress_level": 1}
    im.save(buffer, fmt, **{**defaults, **params})
    return buffer.getvalue()


def gif(im: Image.Image) -> bytes:
    """A GIF as a user's tool would make it: adaptive palette (fast octree), no dithering."""
    palette = im.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    return encode(palette, "GIF")


def bits(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
