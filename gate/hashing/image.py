"""All the perceptual hashes of one image body, as one picklable value (it crosses process pools)."""

from __future__ import annotations

from dataclasses import dataclass

from gate.hashing.decode import DecodeFailure, decode
from gate.hashing.options import HashOptions
from gate.hashing.pdq import pdq_of
from gate.hashing.perceptual import perceptual
from gate.types import PdqHash, Unhashable


@dataclass(frozen=True, slots=True)
class ImageHashes:
    pdq: tuple[PdqHash, ...] = ()
    phash: str | None = None
    dhash: str | None = None
    unhashable: Unhashable | None = None
    unhashable_detail: str | None = None
    width: int | None = None
    height: int | None = None


def hash_image(body: bytes, media_type: str, options: HashOptions, *, reduce: bool = True) -> ImageHashes:
    """PDQ (and pHash / dHash on request) of an image body. Never raises for bad input: a body that
    cannot be hashed gives ``unhashable`` with its reason and a short detail.

    ``reduce=False`` hashes the full-resolution image, as HMA does (slow; for tests and bank building).
    """
    try:
        decoded = decode(body, media_type, max_pixels=options.max_image_pixels, reduce=reduce)
    except DecodeFailure as failure:
        return ImageHashes(unhashable=failure.reason, unhashable_detail=failure.detail)
    pdq, quality = pdq_of(decoded, dihedral=options.dihedral)
    if quality < options.min_pdq_quality:
        # A flat or featureless image: its hash is noise that would match other flat images.
        return ImageHashes(
            unhashable=Unhashable.LOW_QUALITY,
            unhashable_detail=f"PDQ quality {quality} is below {options.min_pdq_quality}",
            width=decoded.width,
            height=decoded.height,
        )
    phash, dhash = perceptual(decoded.pixels, phash=options.phash, dhash=options.dhash)
    return ImageHashes(pdq=pdq, phash=phash, dhash=dhash, width=decoded.width, height=decoded.height)
