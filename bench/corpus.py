"""The benchmark corpus, built in this run from the photographs shipped inside installed wheels.

scikit-image (``skimage/data``), scikit-learn (``sklearn/datasets/images``) and matplotlib
(``mpl-data/sample_data``) carry real photographs; nothing is downloaded and nothing large is committed.
Each photo is cropped to 4:3 and resized (bicubic) to a long side of 256, 1024 and 2048 px and to
4032×3024 (12 MP, a phone camera), then encoded as JPEG q85, PNG, WebP and GIF.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image

SIZES: dict[str, tuple[int, int]] = {
    "256px": (256, 192),
    "1024px": (1024, 768),
    "2048px": (2048, 1536),
    "12MP": (4032, 3024),
}
FORMATS = ("JPEG", "PNG", "WEBP", "GIF")  # Pillow's names
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
# What the tables call them (Pillow's WEBP is WebP).
FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF"}


def label(size: str, fmt: str) -> str:
    """A row of the hashing table: ``12MP JPEG``, ``1024px WebP``."""
    return f"{size} {FORMAT_NAMES[fmt]}"


def size_name(size: str) -> str:
    """A size as the sizing table names it: ``1024×768 (0.8 MP)``."""
    width, height = SIZES[size]
    return f"{width}×{height} ({width * height / 1e6:.1f} MP)"


def _photo_paths() -> list[Path]:
    import matplotlib
    import skimage
    import sklearn

    skimage_data = Path(skimage.__file__).parent / "data"
    sklearn_images = Path(sklearn.__file__).parent / "datasets" / "images"
    mpl_sample = Path(matplotlib.get_data_path()) / "sample_data"
    return [
        skimage_data / "astronaut.png",
        skimage_data / "coffee.png",
        skimage_data / "chelsea.png",
        skimage_data / "rocket.jpg",
        sklearn_images / "china.jpg",
        sklearn_images / "flower.jpg",
        mpl_sample / "grace_hopper.jpg",
    ]


@dataclass(frozen=True)
class Sample:
    photo: str  # file name of the source photograph
    size: str  # a key of SIZES
    fmt: str  # a member of FORMATS
    body: bytes

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.fmt]

    @property
    def label(self) -> str:
        return label(self.size, self.fmt)


@cache
def photos(limit: int | None = None) -> tuple[tuple[str, Image.Image], ...]:
    out = []
    for path in _photo_paths()[:limit]:
        with Image.open(path) as im:
            out.append((path.name, im.convert("RGB")))
    return tuple(out)


def _crop_4_3(im: Image.Image) -> Image.Image:
    w, h = im.size
    if w * 3 > h * 4:  # too wide
        cw = h * 4 // 3
        return im.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h))
    ch = w * 3 // 4
    return im.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch))


@cache
def _resized(name: str, size: str, limit: int | None) -> Image.Image:
    im = dict(photos(limit))[name]
    return _crop_4_3(im).resize(SIZES[size], Image.Resampling.BICUBIC)


def encode(im: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        im.save(buffer, "JPEG", quality=85)
    elif fmt == "PNG":
        im.save(buffer, "PNG", compress_level=6)
    elif fmt == "WEBP":
        im.save(buffer, "WEBP", quality=80)
    else:  # a GIF as tools make it: adaptive palette, no dithering
        im.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(buffer, "GIF")
    return buffer.getvalue()


def sample(name: str, size: str, fmt: str, limit: int | None = None) -> Sample:
    return Sample(name, size, fmt, _encoded(name, size, fmt, limit))


@cache
def _encoded(name: str, size: str, fmt: str, limit: int | None) -> bytes:
    return encode(_resized(name, size, limit), fmt)


def corpus(
    n_photos: int | None, sizes: tuple[str, ...] = tuple(SIZES), formats: tuple[str, ...] = FORMATS
) -> list[Sample]:
    """Every (photo, size, format) combination for the first ``n_photos`` photos (None: all)."""
    return [
        sample(name, size, fmt, n_photos) for name, _ in photos(n_photos) for size in sizes for fmt in formats
    ]
