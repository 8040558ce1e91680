"""Real image files with mutated headers, for the hashing property tests.

A mutation is data (``Op``), so hypothesis can draw and shrink it and a plain ``random.Random`` can make
the same kind of bodies for the slower checks (worker processes, a running gate).
"""

from __future__ import annotations

import random
import struct
from functools import cache

from PIL import Image

from tests.support.images import photo
from tests.support.media import TEN_MS_FIRST, exif, save

HEADER = 1024  # mutations land in the first bytes: magic, sizes, chunk and segment lengths, palettes
KINDS = ("set", "insert", "delete", "truncate", "int16", "int32")
# Values that stress length and size fields.
EXTREMES = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)

Op = tuple[str, int, bytes]


@cache
def seeds() -> tuple[bytes, ...]:
    """Small real files: every container the gate opens frames or orientation in."""
    a = photo("astronaut.png").resize((96, 64))
    b = photo("coffee.png").resize((96, 64))
    gif_a, gif_b = a.quantize(64), b.quantize(64)
    return (
        save(a, "JPEG", quality=80),
        save(a, "JPEG", quality=80, exif=exif(6)),
        save(a, "JPEG", quality=80, progressive=True),
        save(a, "PNG"),
        save(a, "PNG", b, **TEN_MS_FIRST),  # APNG
        save(a, "PNG", b, default_image=True),  # APNG with a default image outside the animation
        save(gif_a, "GIF"),
        save(gif_a, "GIF", gif_b, **TEN_MS_FIRST),
        save(a, "WEBP", quality=70),
        save(a, "WEBP", b, lossless=True, **TEN_MS_FIRST),
        save(a, "PNG", exif=exif(8)),
        save(Image.merge("RGBA", (*a.split(), a.convert("L"))), "PNG"),
    )


def apply(seed: bytes, ops: list[Op]) -> bytes:
    body = bytearray(seed)
    for kind, where, value in ops:
        span = max(1, min(len(body), HEADER))
        pos = where % span
        if kind == "set":
            body[pos : pos + len(value)] = value
        elif kind == "insert":
            body[pos:pos] = value
        elif kind == "delete":
            del body[pos : pos + len(value)]
        elif kind == "truncate":
            del body[(where * 7919) % (len(body) + 1) :]  # anywhere in the file, not only the header
        else:
            extreme = EXTREMES[value[0] % len(EXTREMES)]
            packed = struct.pack(
                ">H" if kind == "int16" else ">I", extreme & (0xFFFF if kind == "int16" else 0xFFFFFFFF)
            )
            body[pos : pos + len(packed)] = packed
    return bytes(body)


def random_bodies(count: int, seed: int = 20261205) -> list[bytes]:
    """``count`` mutated bodies drawn like the hypothesis strategy draws them, reproducibly."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        ops = [
            (rng.choice(KINDS), rng.randrange(4 * HEADER), rng.randbytes(rng.randint(1, 8)))
            for _ in range(rng.randint(1, 4))
        ]
        out.append(apply(rng.choice(seeds()), ops))
    return out
