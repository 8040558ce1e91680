"""Every image decoder that opens an upload: the bytes are judged as each format a viewer could read.

Why every decoder and not the sniffed one: a viewer does not ask the gate's sniffer. A JPEG whose first
APP1 segment makes bytes 4–7 read ``ftyp`` sniffs as video, yet the PDS stores it as ``image/jpeg`` and
every browser shows the picture (issue 12). So the body is offered to each decoder the gate allows, in
turn, and every one that opens it is an interpretation to hash; the sniffed type's own decoders go first.
Pillow decides "opens" exactly as ``Image.open`` does: its ``accept`` check on the first 16 bytes, then
the format's header parser. Formats without an ``accept`` check (TGA, IM, IMT, PCD, SPIDER) parse every
body's header, which is why every upload, whatever it sniffs as, goes to a hashing worker.

Trust boundary: this runs only in hashing worker processes (gate/hashing/worker.py), and never a decoder
that runs another program or opens embedded data with every decoder (``REFUSED``). A Pillow upgrade that
registers a format in neither list leaves it untried (and fails tests/unit/hashing/test_formats.py
until someone decides).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass

import pillow_heif
from PIL import Image, UnidentifiedImageError

from gate.types import Unhashable

# HEIC / HEIF come from pillow-heif (a maintained Pillow plugin); AVIF is Pillow's own since 11.2.
# Registering an opener is a one-time, idempotent addition to Pillow's registry.
pillow_heif.register_heif_opener()

# Pillow formats the gate runs on uploads. Each decodes in this process with Pillow's (or libheif's,
# libavif's, openjpeg's) own code and nothing else: no helper program, no temporary file.
DECODERS: frozenset[str] = frozenset(
    {
        # What browsers and image proxies show.
        *("JPEG", "PNG", "GIF", "WEBP", "AVIF", "HEIF", "BMP", "DIB", "ICO", "CUR", "TIFF", "JPEG2000"),
        # The rest of Pillow's readers: rarely seen by viewers, but "the gate cannot read it" must not
        # be a way around it for anyone whose tools can.
        *("BLP", "DCX", "DDS", "FITS", "FLI", "FTEX", "GBR", "ICNS", "IM", "IMT", "MCIDAS", "MSP", "PCD"),
        *("PCX", "PIXAR", "PPM", "PSD", "QOI", "SGI", "SPIDER", "SUN", "TGA", "XBM", "XPM", "XVTHUMB"),
        *("FPX", "MIC"),  # only registered when olefile is installed
    }
)
# Pillow formats never tried, and why.
REFUSED: dict[str, str] = {
    "EPS": "renders with Ghostscript, an external program",
    "IPTC": "decodes the image embedded in it with every registered format, EPS included",
    "MPEG": "identifies a stream but has no decoder (a metadata-only stub)",
    "BUFR": "metadata-only stub: its pixels need a handler the gate does not install",
    "GRIB": "metadata-only stub: its pixels need a handler the gate does not install",
    "HDF5": "metadata-only stub: its pixels need a handler the gate does not install",
    "WMF": "metadata-only stub outside Windows (vector graphics, no decoder here)",
}

# Sniffed types whose magic bytes name a format viewers show. When none of the named decoders opens such
# bytes they are "unhashable: corrupt" (never merely unscannable): a browser is more lenient than Pillow
# (a PNG with a bad CRC, a JPEG with a broken marker) and may still show them. MPO is a JPEG to a viewer.
VIEWER_FORMATS: dict[str, tuple[str, ...]] = {
    "image/jpeg": ("JPEG", "MPO"),
    "image/png": ("PNG",),
    "image/gif": ("GIF",),
    "image/webp": ("WEBP",),
    "image/bmp": ("BMP",),
    "image/tiff": ("TIFF",),
    "image/heic": ("HEIF",),
    "image/heif": ("HEIF",),
    "image/avif": ("AVIF", "HEIF"),
}


@dataclass(slots=True)
class Opened:
    """One decoder's reading of the body: its media type and the open (not yet decoded) image."""

    media_type: str
    image: Image.Image
    name: str  # the Pillow format that opened it (its registry key: "JPEG" for an MPO too)


@functools.cache
def tried() -> tuple[str, ...]:
    """The formats tried, in Pillow's registry order (ends up deterministic: plugins load in a fixed order)."""
    Image.init()
    return tuple(f for f in Image.OPEN if f in DECODERS)


def media_type_of(pillow_format: str, sniffed: str) -> str:
    """The media type to record for an image Pillow read as ``pillow_format``: the sniffed type when
    that is the format the magic bytes named (``image/heic`` rather than Pillow's ``image/heif``)."""
    if pillow_format in VIEWER_FORMATS.get(sniffed, ()):
        return sniffed
    return Image.MIME.get(pillow_format) or f"image/x-{pillow_format.lower()}"


def open_all(body: bytes, sniffed: str) -> Iterator[Opened | OpenFailure]:
    """Every decoder's reading of ``body``, the sniffed type's decoders first. Yields an ``OpenFailure``
    when no decoder the magic bytes name reads them, or a header is a decompression bomb. The caller
    closes each image."""
    named = [f for f in VIEWER_FORMATS.get(sniffed, ()) if f in tried()]
    refusals: list[OpenFailure] = []
    opened_named = False
    for name in named:
        result = _open(body, name, sniffed)
        if isinstance(result, Opened) or (result is not None and result.reason is Unhashable.BOMB):
            opened_named = True
            yield result
            break  # the named decoders are alternatives for one format (AVIF: Pillow's, else libheif's)
        if result is not None:
            refusals.append(result)
    if named and not opened_named:
        # Bytes that claim a format viewers show, which its decoder cannot read: broken as an image
        # (as before), not "unscannable". Other decoders still get their turn below.
        yield (
            refusals[0]
            if refusals
            else OpenFailure(sniffed, Unhashable.CORRUPT, f"not a readable {sniffed} image")
        )
    for name in tried():
        if name not in named:
            result = _open(body, name, sniffed)
            # Another format's header parser raising means the bytes are not that format, unless it
            # got as far as a size (a bomb).
            if isinstance(result, Opened) or (result is not None and result.reason is Unhashable.BOMB):
                yield result


def _open(body: bytes, name: str, sniffed: str) -> Opened | OpenFailure | None:
    """``name``'s reading of ``body``; None when the bytes are not that format."""
    _factory, accept = Image.OPEN[name]
    if accept is not None:
        try:
            verdict = accept(body[:16])  # what Image.open hands every accept check
        except Exception:  # a short prefix (Image.open treats this as "not this format" too)
            return None
        if not verdict or isinstance(verdict, str):  # a str: "recognised, but no support built in"
            return None
    try:
        image = Image.open(io.BytesIO(body), formats=[name])
    except UnidentifiedImageError:
        return None
    except Exception as exc:
        return OpenFailure(media_type_of(name, sniffed), *failure_of(exc, body))
    return Opened(media_type_of(image.format or name, sniffed), image, name)


@dataclass(frozen=True, slots=True)
class OpenFailure:
    media_type: str
    reason: Unhashable
    detail: str


def failure_of(exc: BaseException, body: bytes) -> tuple[Unhashable, str]:
    """Why a decoder failed, as an ``Unhashable`` reason and a short detail. Decoders of hostile input
    raise anything (OSError, SyntaxError, ValueError, struct.error...)."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError)):
        return Unhashable.BOMB, short(exc) if not isinstance(
            exc, MemoryError
        ) else "out of memory while decoding"
    lowered = str(exc).lower()
    if "truncat" in lowered or "end of file" in lowered or isinstance(exc, EOFError) or _riff_short(body):
        return Unhashable.TRUNCATED, short(exc)
    return Unhashable.CORRUPT, short(exc)


def _riff_short(body: bytes) -> bool:
    """A RIFF (WebP) body shorter than its header says: libwebp only reports "cannot decode"."""
    return body[:4] == b"RIFF" and int.from_bytes(body[4:8], "little") + 8 > len(body)


def short(exc: BaseException | str) -> str:
    text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    return text if len(text) <= 160 else text[:157] + "..."
