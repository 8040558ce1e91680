"""Test images made from the real photographs shipped inside the scikit-image wheel."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
import skimage
from PIL import Image

DATA = Path(skimage.__file__).parent / "data"


@cache
def photo(name: str = "astronaut.png") -> Image.Image:
    with Image.open(DATA / name) as img:
        return img.convert("RGB")


def encode(img: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg(name: str = "astronaut.png", quality: int = 90) -> bytes:
    return encode(photo(name), "JPEG", quality=quality)


def near_duplicate(name: str = "astronaut.png") -> bytes:
    """Re-encoded at lower quality and resized: different bytes, nearly the same picture."""
    img = photo(name)
    small = img.resize((img.width * 4 // 5, img.height * 4 // 5), Image.Resampling.LANCZOS)
    return encode(small, "JPEG", quality=60)


def rotated(name: str = "astronaut.png") -> bytes:
    return encode(photo(name).transpose(Image.Transpose.ROTATE_90), "PNG")


def flat() -> bytes:
    return encode(Image.new("RGB", (300, 300), (128, 128, 128)), "PNG")


def noise_png(seed: int = 1, size: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)), "PNG")
