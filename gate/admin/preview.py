"""The blurred, greyscale preview a reviewer sees by default: a small derivative rendered server-side.

Less human exposure (field.md): the browser never receives the original bytes for a preview — only a
≤ 160 px greyscale JPEG blurred hard enough to judge "is this the kind of thing the bank says" without
seeing detail. The original goes out only through an audited, time-limited reveal.

Decoding reuses the hasher's decoder for the formats viewers show (never Pillow's whole plugin list;
bomb limit before any pixel), the sniffed one first: a JPEG that also sniffs as MP4 gets its preview.
CPU-bound: callers run it in a thread.
"""

from __future__ import annotations

import io

from PIL import Image, ImageFilter

from gate.hashing.decode import Decoded, DecodeFailure, decode
from gate.hashing.formats import VIEWER_FORMATS
from gate.hashing.sniff import sniff

PREVIEW_SIDE = 160
BLUR_RADIUS = 8  # at 160 px: faces and text are gone, layout and tone remain


def blurred_preview(body: bytes, max_pixels: int) -> bytes | None:
    """JPEG bytes of the blurred greyscale derivative, or None when the media is not a decodable image."""
    decoded = _first_picture(body, max_pixels)
    if decoded is None:
        return None
    im = Image.fromarray(decoded.pixels).convert("L")
    im.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BOX)
    im = im.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=60)
    return out.getvalue()


def _first_picture(body: bytes, max_pixels: int) -> Decoded | None:
    for media_type in dict.fromkeys((sniff(body), *VIEWER_FORMATS)):
        if media_type in VIEWER_FORMATS:
            try:
                return decode(body, media_type, max_pixels=max_pixels, reduce=True)
            except DecodeFailure:
                continue
    return None
