"""Small test images with real perceptual content (PDQ quality well above the cut-off).

Each image is a few random flat shapes: strong edges keep the PDQ hash within a few bits under JPEG
re-encoding and resizing while every byte changes (a real near-duplicate), and two seeds are more than
100 bits apart.
"""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageDraw

SIZE = 256


def picture(seed: int) -> Image.Image:
    rng = random.Random(seed)
    img = Image.new("RGB", (SIZE, SIZE), (rng.randrange(256),) * 3)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rng.randrange(SIZE), rng.randrange(SIZE)
        box = (x, y, x + rng.randrange(20, 120), y + rng.randrange(20, 120))
        fill = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return img


def png(seed: int) -> bytes:
    out = io.BytesIO()
    picture(seed).save(out, "PNG")
    return out.getvalue()


def near_duplicate(seed: int, quality: int = 80) -> bytes:
    """The same picture resized and re-encoded as JPEG: every byte differs, the picture does not."""
    img = picture(seed).resize((SIZE - 16, SIZE - 16), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
