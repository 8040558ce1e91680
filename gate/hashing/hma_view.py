"""The pixels HMA's hasher reads from an image, where they are not the picture the gate hashes.

Why: operators fill HMA banks through HMA's own ``POST /c/bank/X/content``, and HMA (threatexchange's
``pdq_from_bytes``) hashes ``np.asarray(Image.open(file))`` as it comes: the first frame in its stored
mode, with no colour conversion (only LA and I;16 are converted to RGB first). pdqhash then reads
channels 0–2 as R, G, B, or a 2-D array as grey. For most images that is the picture (RGB, RGBA with
alpha dropped, L, LA: the gate's own hash, bit for bit); for the modes below it is not, and a file
banked through HMA matches only a hash computed the same way (the ``as_hma`` variant,
gate/hashing/image.py). Measured against HMA 1.1.7 and checked against threatexchange itself by
tests/unit/hashing/test_hma_view.py:

- P (palette PNG, GIF, BMP...): the palette *indices* as grey levels (220–240 bits from the picture);
- CMYK (JPEG, TIFF; Adobe-inverted ones as Pillow un-inverts them): C, M, Y as R, G, B, K ignored
  (the bitwise complement of the picture's hash when K is 0);
- I;16 (16-bit grey PNG, TIFF): Pillow's conversion to RGB, which clips at 255 (a dark 16-bit image gets
  a hash there that the gate's scaled-down 8 bits do not);
- LAB, YCbCr, HSV: their three channels as R, G, B.

No view, because HMA has no hash for them: 1-bit images (pdqhash sees 0/1 luma, always quality 0),
PA and La (two channels: pdqhash fails on channel 2), I, F and the other 16-bit layouts (not bytes:
pdqhash refuses the array). HEIC is not an image to HMA at all (no HEIF plugin: HTTP 500).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

# gate/hashing/decode.py's Pixels (that module imports this one).
Pixels = npt.NDArray[np.uint8]

# HMA stores and returns no PDQ hash below this quality (threatexchange's PdqSignal.QUALITY_THRESHOLD).
HMA_MIN_QUALITY = 50
# Three-channel modes whose channels HMA takes for R, G, B (the gate converts them to RGB).
_RAW_CHANNELS = frozenset({"LAB", "YCbCr", "HSV"})
_IDENTITY_GREY = [v for i in range(256) for v in (i, i, i)]


def hma_pixels(im: Image.Image) -> Pixels | None:
    """What pdqhash reads when HMA hashes the loaded image ``im`` (H×W grey or H×W×3), or None where
    that is the gate's own picture or HMA gets no hash from it."""
    mode = im.mode
    if mode == "P":
        palette = im.getpalette("RGB")
        if palette is not None and palette == _IDENTITY_GREY[: len(palette)]:
            return None  # index i is grey i: HMA's reading is the picture
        return np.ascontiguousarray(np.asarray(im))
    if mode == "CMYK":
        # C, M, Y regrouped by Pillow: a third of the time of copying numpy's strided [:, :, :3] view.
        return np.asarray(Image.merge("RGB", im.split()[:3]))
    if mode in _RAW_CHANNELS:
        return np.asarray(im)
    if mode == "I;16":
        return np.ascontiguousarray(np.asarray(im.convert("L")))  # Pillow's clipping conversion
    return None
