"""Decode an image body, safely, into the small 8-bit pixel array the perceptual hashes need.

Trust boundary: the bytes come from any authenticated account. Pillow only tries the one format the
magic bytes named (never its whole plugin list, which includes EPS via Ghostscript), the pixel count
is checked against the bomb limit from the header before a single pixel is decoded, and every
decoder failure becomes a ``DecodeFailure`` with an ``Unhashable`` reason.

The fast path (issue 6, "hashing at the limit"): PDQ squeezes any image to 64×64 before its DCT, so
decoding all 12 MP buys nothing but time. Images up to 1 MP are hashed at full resolution (exactly
HMA's hash). Larger ones: JPEG is decoded with libjpeg's DCT scaling (``draft``: 1/2, 1/4, 1/8)
straight to luma, other formats are decoded then shrunk with an integer box ``reduce``, and a final
box resize brings each side to ``pdq_side(side)`` (513–640 px), chosen so that PDQ's own blur window
covers the same original pixels as at full resolution. The short side never drops below 512 px.
Measured on the fidelity corpus (tests/unit/test_hashing_fidelity.py): integer reduce alone to a
short side ≥ 512 gave a median of 6 and a max of 18 bits from the full-resolution hash; with the
window-matched final size, a median of 2 and a max of 8.

Choices where Pillow and HMA disagree with a correct image (HMA hashes ``np.asarray(image)`` as is):
- Colour: CMYK, palette, 1-bit and 16-bit images are converted to 8-bit RGB or luma first (HMA hashes
  CMYK's C,M,Y planes as R,G,B and palette indices as grey levels; 1-bit images get quality 0).
- Alpha is dropped, not composited: for RGBA this is exactly what HMA hashes (it reads channels 0–2),
  so hashes from HMA-built banks match bit for bit, and content hidden under alpha 0 is still hashed.
- EXIF orientation is NOT applied: HMA and threatexchange do not apply it, so banks hold hashes of
  the stored pixels. A copy that differs only by its orientation tag is caught by dihedral hashing.
- Animated GIF / WebP / APNG: the first frame only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pillow_heif
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from gate.types import Unhashable

# HEIC / HEIF come from pillow-heif (a maintained Pillow plugin); AVIF is Pillow's own since 11.2.
# Registering an opener is a one-time, idempotent addition to Pillow's registry.
pillow_heif.register_heif_opener()

# Images up to this size are hashed at full resolution (bit-identical to HMA): PDQ on 1 MP takes
# ~10-20 ms, and most uploads from the Bluesky app are larger than this anyway.
FULL_RESOLUTION_PIXELS = 1024 * 1024

# The Pillow formats tried for each sniffed media type; anything else is not decoded at all.
_FORMATS: dict[str, tuple[str, ...]] = {
    "image/jpeg": ("JPEG",),  # MPO (multi-picture JPEG) is opened by the JPEG factory
    "image/png": ("PNG",),
    "image/gif": ("GIF",),
    "image/webp": ("WEBP",),
    "image/bmp": ("BMP",),
    "image/tiff": ("TIFF",),
    "image/heic": ("HEIF",),
    "image/heif": ("HEIF",),
    "image/avif": ("AVIF", "HEIF"),
}

Pixels = npt.NDArray[np.uint8]  # H×W (luma) or H×W×3 (RGB), C-contiguous


class DecodeFailure(Exception):
    def __init__(self, reason: Unhashable, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Decoded:
    pixels: Pixels
    width: int  # the image's own size, before any reduction
    height: int


def decodable(media_type: str) -> bool:
    return media_type in _FORMATS


def decode(body: bytes, media_type: str, *, max_pixels: int, reduce: bool = True) -> Decoded:
    """Decode the first frame of an image to 8-bit pixels, reduced unless ``reduce`` is False."""
    formats = _FORMATS.get(media_type)
    if formats is None:
        raise DecodeFailure(Unhashable.CORRUPT, f"no decoder for {media_type}")
    try:
        with Image.open(io.BytesIO(body), formats=list(formats)) as im:
            width, height = im.size
            # The gate's own limit, per call. Pillow's global one (Image.MAX_IMAGE_PIXELS) is only set
            # per task inside the hashing worker processes; in a shared process it is left alone, and
            # Pillow refusing first (over twice its limit) is reported as a bomb all the same.
            if width * height > max_pixels:
                raise DecodeFailure(
                    Unhashable.BOMB,
                    f"{width}x{height} is {width * height} pixels, over the limit of {max_pixels}",
                )
            if width < 1 or height < 1:
                raise DecodeFailure(Unhashable.CORRUPT, f"empty image {width}x{height}")
            pixels = _pixels(_fast(im) if reduce else _loaded(im))
    except DecodeFailure:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeFailure(Unhashable.BOMB, _short(exc)) from None
    except UnidentifiedImageError:
        raise DecodeFailure(Unhashable.CORRUPT, f"not a readable {media_type} image") from None
    except MemoryError:
        raise DecodeFailure(Unhashable.BOMB, "out of memory while decoding") from None
    except Exception as exc:
        # Decoders of hostile input raise anything (OSError, SyntaxError, ValueError, struct.error...):
        # every one of them is an explicit "unhashable", never an exception out of the hasher.
        message = str(exc)
        lowered = message.lower()
        if "truncat" in lowered or "end of file" in lowered or isinstance(exc, EOFError) or _riff_short(body):
            raise DecodeFailure(Unhashable.TRUNCATED, _short(exc)) from None
        raise DecodeFailure(Unhashable.CORRUPT, _short(exc)) from None
    return Decoded(pixels=pixels, width=width, height=height)


def _riff_short(body: bytes) -> bool:
    """A RIFF (WebP) body shorter than its header says: libwebp only reports "cannot decode"."""
    return body[:4] == b"RIFF" and int.from_bytes(body[4:8], "little") + 8 > len(body)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _loaded(im: Image.Image) -> Image.Image:
    im.load()
    return im


def pdq_side(side: int) -> int:
    """The size a side is shrunk to so that PDQ blurs it exactly as it blurs the full side.

    PDQ box-filters each axis with a window of ceil(side / 128) px before sampling 64 points. Shrunk
    to ``5 * side / window`` px, the window becomes 5 px that cover the same ``window`` original px, so
    the shrunk image is filtered like the original. The result lies in (512, 640]: the short side
    never drops below 512 px. Sides up to 640 px are left alone.
    """
    if side <= 640:
        return side
    window = -(-side // 128)
    return round(5 * side / window)


def _fast(im: Image.Image) -> Image.Image:
    width, height = im.size
    if width * height <= FULL_RESOLUTION_PIXELS:
        return _loaded(im)  # cheap enough: hashed exactly as HMA hashes it
    target = (pdq_side(width), pdq_side(height))
    if isinstance(im, JpegImagePlugin.JpegImageFile):
        # libjpeg scales by 1/2, 1/4 or 1/8 while both sides stay ≥ the target; "L" asks for the Y
        # plane only (Y is 0.299R + 0.587G + 0.114B, the luma PDQ computes). CMYK keeps its mode.
        im.draft("L", target)
    im.load()
    img = _plain(im)
    factor = min(img.width // target[0], img.height // target[1])
    if factor >= 2:
        img = img.reduce(factor)  # integer box average: fast, and exact about what it averages
    if img.size != target:
        img = img.resize(target, Image.Resampling.BOX)
    return img


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
