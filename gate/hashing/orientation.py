"""The EXIF orientation viewers apply, as a view of the decoded pixels and as PDQ's transform name.

A phone photo is usually stored sideways with ``Orientation = 6``; browsers (``image-orientation:
from-image``), the Bluesky app and image proxies show it upright. Banks hold hashes of pictures as
people saw them, so the banked picture stored rotated with a tag that turns it back is 130 bits from the
bank (issue 12). The gate hashes both: the stored grid (what HMA and threatexchange hash) and the
picture as displayed.

Where the tag comes from: ``Image.getexif()``, which reads EXIF from JPEG APP1, PNG eXIf (and the
``Raw profile type exif`` text chunk), WebP and TIFF, and falls back to XMP's ``tiff:Orientation``, as
``ImageOps.exif_transpose`` does. Pillow's TIFF and pillow-heif's HEIF readers already hand over the
displayed picture and drop the tag, so nothing is applied twice; Pillow's AVIF reader reports
``irot``/``imir`` as this tag.

Why not PDQ's dihedral hash of the stored grid: PDQ's downsample is not symmetric under flips (its
box windows and sample points sit differently from each edge), so the dihedral variant is up to 32 bits
from the hash of the turned picture (a median of 4 over tests/unit/hashing/corpus.py photos at four sizes).
The displayed picture's hash is PDQ's downsample of the same decoded pixels read in the displayed
order (a numpy view: no second decode, ~0.3 ms): 0 bits from PDQ's own hash of the turned image
(tests/unit/hashing/test_orientation.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import ExifTags, Image

from gate.hashing.decode import Luma, Pixels


@dataclass(frozen=True, slots=True)
class Orientation:
    """How the stored rows and columns become the displayed picture: transpose first, then flips."""

    tag: int  # the EXIF value, 2–8
    transpose: bool
    flip_rows: bool  # upside down (after any transpose)
    flip_cols: bool  # mirrored left-right (after any transpose)
    transform: str  # PDQ's name for the same transform (gate/hashing/pdq.py TRANSFORMS)

    def view(self, pixels: Pixels | Luma) -> Pixels | Luma:
        """The displayed picture as a view of ``pixels`` (H×W or H×W×3, or a frame's luma): nothing is
        copied."""
        out = pixels.swapaxes(0, 1) if self.transpose else pixels
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return out


# EXIF 2.3, tag 0x0112. Checked against ImageOps.exif_transpose, pixel for pixel, and against PDQ's
# dihedral names by tests/unit/hashing/test_orientation.py.
ORIENTATIONS: dict[int, Orientation] = {
    o.tag: o
    for o in (
        Orientation(2, transpose=False, flip_rows=False, flip_cols=True, transform="flipy"),
        Orientation(3, transpose=False, flip_rows=True, flip_cols=True, transform="rotate180"),
        Orientation(4, transpose=False, flip_rows=True, flip_cols=False, transform="flipx"),
        Orientation(5, transpose=True, flip_rows=False, flip_cols=False, transform="flipplus1"),
        Orientation(6, transpose=True, flip_rows=False, flip_cols=True, transform="rotate270"),
        Orientation(7, transpose=True, flip_rows=True, flip_cols=True, transform="flipminus1"),
        Orientation(8, transpose=True, flip_rows=True, flip_cols=False, transform="rotate90"),
    )
}


def orientation_of(im: Image.Image, *, as_opened: bool = False) -> Orientation | None:
    """The orientation a viewer applies to the current frame of ``im``; None for "as stored" (1, absent,
    out of range, or metadata too broken to read: a viewer then shows the stored grid, hashed anyway).

    ``as_opened``: from the metadata Pillow read when it opened the file, never decoding the pixels
    (Pillow's PNG reader decodes the whole image in ``getexif`` to reach chunks after it; the caller
    has made sure there are none: gate/hashing/vips.py)."""
    try:
        exif = Image.Image.getexif(im) if as_opened else im.getexif()
        tag = exif.get(ExifTags.Base.Orientation)
    except Exception:  # hostile metadata: any parser error means "no orientation", never a failure
        return None
    return ORIENTATIONS.get(tag) if isinstance(tag, int) else None
