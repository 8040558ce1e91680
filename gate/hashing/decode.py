"""Decode an image body, safely, into the small 8-bit pixel array the perceptual hashes need.

Trust boundary: the bytes come from any authenticated account. Which decoders open them is
gate/hashing/formats.py's business (never Pillow's whole plugin list, which includes EPS via
Ghostscript); here the pixel count is checked against the bomb limit from the header before a single
pixel is decoded, and every decoder failure becomes a ``DecodeFailure`` with an ``Unhashable`` reason.

The fast path (issue 6, "hashing at the limit"): PDQ squeezes any image to 64×64 before its DCT, so
decoding all 12 MP buys nothing but time. Images up to 1 MP are hashed at full resolution (exactly
HMA's hash). Larger ones are reduced by an integer ``scale`` per side while the short side stays at
least 512 px: JPEG with libjpeg's DCT scaling (``draft``: 1/2, 1/4, 1/8) straight to luma, other
formats decoded and then averaged in blocks with Pillow's ``reduce`` (large still PNG and WebP are
reduced by libvips instead, where it gives the same picture: gate/hashing/vips.py). PDQ's 64×64 downsample of the
full image is then computed from the reduced one (gate/hashing/pdq_downsample.py). Measured on the
fidelity corpus (tests/unit/hashing/test_fidelity.py), on the images it reduces: the earlier way, a
box resize to PDQ's window and pdqhash on that, was a median of 4 and a max of 8 bits from the
full-resolution hash; this one is a median of 0 and a max of 2, and ~4 ms faster per 12 MP JPEG.

Choices where Pillow and HMA disagree with a correct image (HMA hashes ``np.asarray(image)`` as is):
- Colour: CMYK, palette, 1-bit and 16-bit images are converted to 8-bit RGB or luma first (HMA hashes
  CMYK's C,M,Y planes as R,G,B and palette indices as grey levels; 1-bit images get quality 0). What
  HMA reads instead is taken from the same decode beside them (``Decoded.hma``,
  gate/hashing/hma_view.py), so files banked through HMA's hasher still match.
- Alpha is dropped, not composited: for RGBA this is exactly what HMA hashes (it reads channels 0–2),
  so hashes from HMA-built banks match bit for bit, and content hidden under alpha 0 is still hashed.
- EXIF orientation is not applied to the pixels decoded here: HMA and threatexchange hash the stored
  grid, so that hash stays; the picture as displayed is hashed beside it (gate/hashing/orientation.py).
- Frames after the first (gate/hashing/frames.py) always take the downsample path, at full resolution
  up to 1 MP: within a bit or two of PDQ's own hash, at a fraction of its cost. Those in colour are
  read as their luma only (``Decoded.luma``), which Pillow's RGB→F conversion computes: pdqhash's own
  luma expression, bit for bit for all 2^24 colours (alpha ignored), at half the cost of copying the
  RGB pixels out and weighting them in numpy (issue 18: a 100-frame 500 px GIF spent ~45 ms there).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from gate.errors import GateError
from gate.hashing.formats import VIEWER_FORMATS, failure_of
from gate.hashing.hma_view import hma_pixels
from gate.types import Unhashable

# Images up to this size are hashed at full resolution (bit-identical to HMA): PDQ on 1 MP takes
# ~3 ms (gate/hashing/pdq_native.py), and most uploads from the Bluesky app are larger than this anyway.
FULL_RESOLUTION_PIXELS = 1024 * 1024
# The fast path never reduces the short side below this (issue 6: fitting images inside 512 px cost
# up to 20 bits of PDQ), nor takes images with a side under MIN_REDUCED_SIDE (PDQ's own edge cases).
MIN_SHORT_SIDE = 512
MIN_REDUCED_SIDE = 64

Pixels = npt.NDArray[np.uint8]  # H×W (luma) or H×W×3 (RGB), C-contiguous
Luma = npt.NDArray[np.float32]  # H×W, PDQ's luma of RGB (0.299 R + 0.587 G + 0.114 B, as pdqhash rounds it)
# The pixels of a frame read as its luma only (``Decoded.luma``): nothing reads them.
NO_PIXELS: Pixels = np.empty((0, 0), np.uint8)


class DecodeFailure(GateError):
    def __init__(self, reason: Unhashable, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Decoded:
    pixels: Pixels
    width: int  # the image's own size, before any reduction
    height: int
    # None: ``pixels`` are the full-resolution image, for PDQ's own hash. Else each pixel is the mean
    # of a scale × scale block of it (the last row and column of blocks may be short), for PDQ's
    # downsample computed from them (gate/hashing/pdq_downsample.py); 1 is the full image that way.
    scale: int | None = None
    # The same frame as HMA's hasher reads it, where that is not ``pixels`` (palette indices, CMYK's
    # C, M, Y planes: gate/hashing/hma_view.py), at the same scale; None otherwise or not asked for.
    hma: Pixels | None = None
    # PDQ's luma of a colour frame, from the same decode. On the downsample path at full resolution
    # (``scale`` 1) it is all there is (``pixels`` is NO_PIXELS): only PDQ's downsample reads such a
    # frame (never the first, which is hashed exactly and gets pHash / dHash). A frame hashed exactly
    # (``scale`` None) has both: the luma for PDQ's own hash, the pixels for everything else.
    luma: Luma | None = None
    # Such a frame as decoded: a copy of its colours (the decoder composites the next frame over its
    # own pixels in place), whose luma ``read_luma`` reads where the frame is hashed. That is in the
    # thread that hashes, not the one decoding the next frame meanwhile (gate/hashing/read_ahead.py).
    colour: Image.Image | None = None


def decode(body: bytes, media_type: str, *, max_pixels: int, reduce: bool = True) -> Decoded:
    """Decode the first frame of an image with the decoders ``media_type`` names (JPEG for
    ``image/jpeg``...) to 8-bit pixels, reduced unless ``reduce`` is False. For the review preview and
    tests; uploads go through gate/hashing/image.py, which tries every decoder."""
    formats = VIEWER_FORMATS.get(media_type)
    if formats is None:
        raise DecodeFailure(Unhashable.CORRUPT, f"no decoder for {media_type}")
    try:
        with Image.open(io.BytesIO(body), formats=list(formats)) as im:
            return decode_frame(im, max_pixels=max_pixels, reduce=reduce, exact=True)
    except DecodeFailure:
        raise
    except UnidentifiedImageError:
        raise DecodeFailure(Unhashable.CORRUPT, f"not a readable {media_type} image") from None
    except Exception as exc:
        raise DecodeFailure(*failure_of(exc, body)) from None


def decode_frame(
    im: Image.Image, *, max_pixels: int, reduce: bool, exact: bool, as_hma: bool = False
) -> Decoded:
    """The current frame of an open image as 8-bit pixels. ``exact``: up to 1 MP, the full-resolution
    pixels for PDQ's own hash (``scale`` None); otherwise always the downsample path (``scale`` ≥ 1).
    ``as_hma``: also the pixels HMA's hasher would read, from the same decode (``Decoded.hma``).
    Decoder errors propagate; the caller maps them (``formats.failure_of``)."""
    width, height = im.size
    # The gate's own limit, per frame. Pillow's global one (Image.MAX_IMAGE_PIXELS) is only set per
    # task inside the hashing worker processes; in a shared process it is left alone, and Pillow
    # refusing first (over twice its limit) is reported as a bomb all the same.
    if width * height > max_pixels:
        raise DecodeFailure(
            Unhashable.BOMB, f"{width}x{height} is {width * height} pixels, over the limit of {max_pixels}"
        )
    if width < 1 or height < 1:
        raise DecodeFailure(Unhashable.CORRUPT, f"empty image {width}x{height}")
    if not (reduce and width * height > FULL_RESOLUTION_PIXELS and min(width, height) >= MIN_REDUCED_SIDE):
        im.load()
        hma = hma_pixels(im) if as_hma else None
        if not exact:
            # Its luma is read where it is hashed (``read_luma``): in the thread that hashes, not the one
            # decoding the next frame meanwhile (gate/hashing/read_ahead.py).
            colour = _colour(im)
            if colour is not None:
                return Decoded(NO_PIXELS, width, height, scale=1, hma=hma, colour=colour)
            return Decoded(_pixels(im), width, height, scale=1, hma=hma)
        # PDQ's luma straight from the decoded picture, converted to RGB once for both readings:
        # turning the RGB pixels back into a Pillow image for it cost ~1.5 ms a 1 MP frame.
        rgb = im.convert("RGB") if im.mode in _TO_RGB else im
        return Decoded(_pixels(rgb), width, height, hma=hma, luma=_luma(rgb))
    scale = _drafted(im)
    im.load()
    # Both readings are averaged over the same blocks: PDQ's luma is linear in the values averaged.
    factor = min(im.size) // MIN_SHORT_SIDE
    hma = hma_pixels(im) if as_hma else None
    pixels = _pixels(_reduce(_plain(im), factor))
    if hma is not None:
        hma = _pixels(_reduce(Image.fromarray(hma), factor))
    return Decoded(pixels, width, height, scale=scale * max(factor, 1), hma=hma)


def as_later_frame(decoded: Decoded) -> Decoded:
    """A first frame decoded exactly, as a later frame with the same pixels is decoded (``scale`` 1,
    colour read as its luma by the same conversion): its downsample then has the same bits, so a later
    frame repeating it is known as a repeat."""
    pixels, luma = decoded.pixels, decoded.luma
    if luma is None and pixels.ndim == 3:
        luma = rgb_luma(pixels)
    return replace(decoded, pixels=pixels if luma is None else NO_PIXELS, scale=1, hma=None, luma=luma)


def rgb_luma(pixels: Pixels) -> Luma:
    """PDQ's luma of H×W×3 pixels, by the same conversion as ``Decoded.luma``: pdqhash's own values."""
    return np.asarray(Image.fromarray(pixels).convert("F"))


def read_luma(decoded: Decoded) -> Decoded:
    """A frame decoded with its ``colour`` kept, now read as its luma (``Decoded.luma``)."""
    if decoded.colour is None:
        return decoded
    return replace(decoded, luma=_luma(decoded.colour), colour=None)


def _luma(im: Image.Image) -> Luma | None:
    """The loaded frame's luma, for a frame whose 8-bit pixels (``_pixels``) would be RGB."""
    colour = im if im.mode in ("RGB", "RGBA") else _colour(im)  # no copy where none is needed
    return None if colour is None else np.asarray(colour.convert("F"))


def _colour(im: Image.Image) -> Image.Image | None:
    """A copy of the loaded frame, for a frame whose 8-bit pixels (``_pixels``) would be RGB, in a mode
    whose F conversion is PDQ's luma of them."""
    if im.mode in _TO_RGB:
        return im.convert("RGB")  # as ``_pixels`` converts them (P straight to F rounds differently)
    if im.mode in ("RGB", "RGBA"):  # RGBA: the F conversion ignores alpha, as ``_pixels`` drops it
        return im.copy()
    return None  # grey, 1-bit, 16-bit, float, premultiplied: their 8-bit plane is the luma


# Modes ``_pixels`` converts to RGB with Pillow.
_TO_RGB = frozenset({"P", "PA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})


def _drafted(im: Image.Image) -> int:
    """A JPEG set to decode by the largest DCT scale that keeps its short side ≥ MIN_SHORT_SIDE;
    returns that scale (1 for other formats, which are reduced after decoding)."""
    if not isinstance(im, JpegImagePlugin.JpegImageFile):
        return 1
    width, height = im.size
    short = min(width, height)
    # libjpeg scales by the largest of 1/2, 1/4, 1/8 that keeps both sides ≥ the size asked for;
    # "L" asks for the Y plane only (Y is 0.299R + 0.587G + 0.114B, the luma PDQ computes). CMYK
    # keeps its mode. The decoded size is the full size divided by the scale, rounded up.
    im.draft("L", (-(-width * MIN_SHORT_SIDE // short), -(-height * MIN_SHORT_SIDE // short)))
    return round(width / im.size[0])


def _reduce(img: Image.Image, factor: int) -> Image.Image:
    # An integer box average (the largest that keeps the short side ≥ MIN_SHORT_SIDE): fast, and
    # exact about what it averages.
    return img.reduce(factor) if factor >= 2 else img


def _plain(im: Image.Image) -> Image.Image:
    """The image as 8-bit L or RGB (alpha dropped) before averaging: palette indices cannot be
    averaged, and Pillow resizes RGBA premultiplied, which the full-resolution hash does not see."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode in ("LA", "La", "1"):
        return im.convert("L")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_pixels(im))
    return im.convert("RGB")  # P, PA, RGBA (alpha dropped), CMYK, YCbCr...


def _pixels(im: Image.Image) -> Pixels:
    mode = im.mode
    if mode in ("RGB", "L"):
        return np.ascontiguousarray(np.asarray(im))
    if mode in ("RGBA", "RGBX", "RGBa"):
        return np.ascontiguousarray(np.asarray(im)[:, :, :3])  # alpha dropped, as HMA does
    if mode in ("LA", "La"):
        return np.ascontiguousarray(np.asarray(im)[:, :, 0])
    if mode == "1":
        return np.ascontiguousarray(np.asarray(im.convert("L")))
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _eight_bit(np.asarray(im), mode)
    if mode in ("P", "PA"):
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))  # CMYK, YCbCr, LAB, HSV


def _eight_bit(values: npt.NDArray[np.generic], mode: str) -> Pixels:
    """16-bit, 32-bit and float luma scaled to 8 bits (Pillow's own conversion clips at 255)."""
    if mode == "F":
        floats = values.astype(np.float64)
        top = float(floats.max()) if floats.size else 0.0
        scale = 255.0 if top <= 1.0 else 255.0 / top
        return np.ascontiguousarray(np.clip(floats * scale, 0, 255).astype(np.uint8))
    ints = values.astype(np.int64)
    top = int(ints.max()) if ints.size else 0
    if mode == "I" and top <= 255:
        return np.ascontiguousarray(np.clip(ints, 0, 255).astype(np.uint8))
    return np.ascontiguousarray((np.clip(ints, 0, 65535) >> 8).astype(np.uint8))
