"""libvips for the stills Pillow decodes slowest at phone size: large PNG and WebP (issue 18, target 4).

Why: the fast path (gate/hashing/decode.py) reduces a 12 MP JPEG while libjpeg decodes it; for PNG and
WebP Pillow can only decode every pixel and then average blocks. libvips (``pyvips`` with the
``pyvips-binary`` wheel, which bundles libvips, libspng and libwebp) streams a PNG through libspng and
averages blocks as the rows arrive (``shrink``), and asks libwebp itself to decode scaled (its
rescaler averages the area each output pixel covers). That WebP decode is now made by calling the
libwebp Pillow ships directly (gate/hashing/webp.py: the same pixels, ~1.5x faster than the one built
into pyvips-binary); libvips' ``webpload`` is the fallback where that libwebp does not load. Measured by
``python -m bench --only hashing`` against the Pillow path in the same run (process CPU time: libvips
decodes in a thread of its own); the figures are in docs/performance.md.

What goes through here, and nothing else (everything else is the Pillow path, unchanged):
- the picture the image opens on, on the reduced path (over 1 MP), of a file that holds one picture;
- PNG of 8-bit grey, grey + alpha, RGB or RGBA (no palette: HMA hashes palette indices, read by the
  Pillow path; no 16-bit: Pillow and libspng round it differently) with no metadata chunk after the
  pixels (Pillow reads those only while decoding, and the EXIF orientation may be among them);
- WebP without alpha (libwebp's scaled decode weighs colours by alpha, so content under alpha 0 would
  not be hashed as the Pillow path hashes it) whose sides a scale of 2 or more divides (phone sizes:
  4032 x 3024 by 4, 4000 x 3000 by 5), so that each pixel libwebp gives is the mean of whole blocks.
Alpha is dropped, as everywhere. The EXIF orientation is read from the metadata Pillow parsed when it
opened the file, as before. If libvips cannot be loaded, or it or libwebp has any complaint about a
file (warnings included), the Pillow path decodes it and gives today's verdict: neither ever makes a
file unhashable.

Trust boundary: this runs only where Pillow's decoders run (the hashing worker processes). The direct
libwebp call is Pillow's own decoder (its trust boundary is written in gate/hashing/webp.py). Only the
two loaders are called by name, never libvips' sniffing ``new_from_buffer``; libvips' untrusted
operations are blocked; its operation cache is off (nothing of one upload outlives it) and it decodes
on one thread. The pixel count was checked against the bomb limit from the header before this is
reached (gate/hashing/frames.py), and the worker's SIGALRM deadline ends the process inside libvips as
inside Pillow. Sequential access keeps only a few rows of the full image in memory.
"""

from __future__ import annotations

import functools
import importlib
import logging
import struct
from types import ModuleType

import numpy as np
from PIL import Image

from gate.hashing import webp
from gate.hashing.decode import FULL_RESOLUTION_PIXELS, MIN_REDUCED_SIDE, MIN_SHORT_SIDE, Decoded
from gate.hashing.orientation import Orientation, orientation_of

log = logging.getLogger(__name__)

# PNG colour types: grey, RGB, grey + alpha, RGBA (3, palette, stays with Pillow).
_PNG_DIRECT_COLOUR = frozenset({0, 2, 4, 6})
# Chunks Pillow reads into ``info`` (EXIF, text, XMP: where an orientation can be) only on decoding,
# when they come after the first IDAT.
_LATE_METADATA = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt"})


@functools.cache
def _pyvips() -> ModuleType | None:
    """pyvips, set up for hostile input; None where it cannot load (the Pillow path is used)."""
    try:
        pyvips = importlib.import_module("pyvips")
        pyvips.cache_set_max(0)
        pyvips.cache_set_max_mem(0)
        pyvips.cache_set_max_files(0)
        pyvips.concurrency_set(1)  # one upload, one core: the pool sizes the parallelism
        pyvips.block_untrusted_set(True)  # libvips 8.13+; an older system libvips is not used
    except Exception as exc:  # ImportError, OSError when libvips cannot be loaded, a libvips too old
        log.warning("libvips unavailable, large PNG and WebP are decoded by Pillow: %s", exc)
        return None
    return pyvips


def available() -> bool:
    """Loads libvips (in a hashing worker: after the fork, so no libvips thread is forked)."""
    return _pyvips() is not None


def reduced(im: Image.Image, body: bytes) -> tuple[Decoded, Orientation | None] | None:
    """The first picture of ``im`` (opened by Pillow from ``body``, not yet decoded) reduced as the
    fast path reduces it, and its orientation; None when it is not libvips' to decode."""
    width, height = im.size
    if not (width * height > FULL_RESOLUTION_PIXELS and min(width, height) >= MIN_REDUCED_SIDE):
        return None
    if im.__dict__.get("n_frames", 1) != 1:  # read from the header, as gate/hashing/frames.py does
        return None
    factor = max(min(width, height) // MIN_SHORT_SIDE, 1)
    if im.format == "PNG" and im.mode in ("L", "LA", "RGB", "RGBA") and _plain_png(body):
        load = "pngload_buffer"
        options: dict[str, object] = {}
    elif im.format == "WEBP" and im.mode == "RGB" and (factor := _dividing(width, height, factor)) >= 2:
        if webp.available():  # the same scaled decode, ~1.5x faster than libvips' (gate/hashing/webp.py)
            pixels = webp.scaled(body, width, height, factor)
            if pixels is None:  # libwebp's complaint: the Pillow path's verdict, not libvips' second try
                return None
            return Decoded(pixels, width, height, scale=factor), orientation_of(im, as_opened=True)
        load = "webpload_buffer"
        options = {"scale": 1 / factor}  # libwebp's own scaled decode
    else:
        return None
    pyvips = _pyvips()
    if pyvips is None:
        return None
    try:
        image = getattr(pyvips.Image, load)(body, access="sequential", fail_on="warning", **options)
        if image.format != "uchar" or image.bands not in (1, 2, 3, 4):
            return None
        if image.bands in (2, 4):
            image = image.extract_band(0, n=image.bands - 1)  # alpha dropped, as the Pillow path does
        if load == "pngload_buffer":
            if (image.width, image.height) != (width, height):
                return None
            if factor >= 2:
                image = image.shrink(factor, factor, ceil=True)  # block means, as Pillow's reduce
        pixels = np.ascontiguousarray(image.numpy(), dtype=np.uint8)
    except pyvips.Error as exc:
        log.debug("libvips declined a %s, Pillow decodes it: %s", im.format, exc)
        return None
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = np.ascontiguousarray(pixels[:, :, 0])
    return Decoded(pixels, width, height, scale=factor), orientation_of(im, as_opened=True)


def _dividing(width: int, height: int, largest: int) -> int:
    """The largest scale up to ``largest`` that divides both sides, else 1 (the Pillow path). libwebp's
    rescaler averages the area each output pixel covers: whole blocks only when the scale divides the
    side, and PDQ's downsample of the full image is then reproduced (on the bench corpus at 12 MP, 0-2
    bits from the full-resolution hash; 1/5 of 4032 x 3024 px gave 0-4, and 1/2 of 2048 x 1365 px 8)."""
    return next((k for k in range(largest, 1, -1) if width % k == 0 and height % k == 0), 1)


def _plain_png(body: bytes) -> bool:
    """An 8-bit PNG without a palette, whose chunks run whole to IEND with no EXIF, text or XMP after
    the first IDAT. A malformed chunk list is the Pillow path's to judge."""
    if len(body) < 33 or body[12:16] != b"IHDR" or body[24] != 8 or body[25] not in _PNG_DIRECT_COLOUR:
        return False
    position, pixels_seen = 8, False
    while position + 8 <= len(body):
        length, kind = struct.unpack_from(">I4s", body, position)
        if kind == b"IEND":
            return True
        if kind == b"IDAT":
            pixels_seen = True
        elif pixels_seen and kind in _LATE_METADATA:
            return False
        position += 12 + length
    return False
