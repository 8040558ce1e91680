"""Files HMA hashes differently from the picture (issue 13: CMYK, palette, 1-bit), and HMA's own hash.

``hma_hash`` is HMA's code path itself: threatexchange's ``PdqSignal.hash_from_bytes``, which HMA's
``POST /h/hash`` and ``POST /c/bank/X/content`` call on the uploaded bytes (the fake HMA calls the same
function). It is never re-implemented here: the gate's ``as_hma`` variant is checked against it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image
from threatexchange.signal_type.pdq.signal import PdqSignal


@dataclass(frozen=True)
class Kind:
    name: str
    content_type: str
    mode: str  # what Pillow (and so HMA) opens the file as

    def make(self, picture: Image.Image) -> bytes:
        """``picture`` saved as this kind of file, as a user's tool would save it."""
        rgb = picture.convert("RGB")
        out = io.BytesIO()
        if self.name == "cmyk_jpeg":
            rgb.convert("CMYK").save(out, "JPEG", quality=92)
        elif self.name == "palette_png":
            rgb.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, "PNG")
        elif self.name == "palette_gif":
            rgb.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(out, "GIF")
        elif self.name == "one_bit_png":
            rgb.convert("1").save(out, "PNG")  # Floyd-Steinberg dithered, as Pillow (and most tools) do
        else:
            raise ValueError(self.name)
        return out.getvalue()


KINDS = (
    Kind("cmyk_jpeg", "image/jpeg", "CMYK"),
    Kind("palette_png", "image/png", "P"),
    Kind("palette_gif", "image/gif", "P"),
    Kind("one_bit_png", "image/png", "1"),
)
# HMA stores no hash for a 1-bit image: pdqhash reads its pixels as luma 0 or 1, always quality 0.
HMA_CANNOT_BANK = frozenset({"one_bit_png"})
# Per kind, the photograph (tests/support/images.py) a banned file is made of and its clean sibling's: a
# different photograph for each banned file, so a match can only be on that file's own bank entry.
PHOTOS = {
    "cmyk_jpeg": ("astronaut.png", "chelsea.png"),
    "palette_png": ("coffee.png", "motorcycle_left.png"),
    "palette_gif": ("rocket.jpg", "retina.jpg"),
    "one_bit_png": ("camera.png", "moon.png"),
}


def hma_hash(body: bytes) -> str:
    """The PDQ hash HMA computes and banks for ``body``; "" when HMA stores none (quality below 50)."""
    return PdqSignal.hash_from_bytes(body)


def bits(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
