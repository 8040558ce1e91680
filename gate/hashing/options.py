"""What to compute for one upload; derived from the policy and settings, passed to the hasher."""

from __future__ import annotations

from dataclasses import dataclass

# Defaults of the policy's [hashing] max_frames and max_total_pixels (config/policy.toml explains them).
MAX_FRAMES = 300
MAX_TOTAL_PIXELS = 300_000_000
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's default bomb limit, per frame (GATE_MAX_IMAGE_PIXELS)


@dataclass(frozen=True, slots=True)
class HashOptions:
    dihedral: bool = False  # the 8 rotations/flips of PDQ
    min_pdq_quality: int = 50  # below: unhashable "low_quality"
    phash: bool = False  # imagehash's pHash, only when a rule refers to it
    dhash: bool = False
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_frames: int = MAX_FRAMES  # more frames: unhashable "too_many_frames"
    max_total_pixels: int = MAX_TOTAL_PIXELS  # pixels of every frame after the first, together
    # Also HMA's own hash of the first frame where HMA reads other pixels than the picture (palette
    # indices, CMYK's C, M, Y planes: gate/hashing/hma_view.py). Always on; off only to measure it.
    as_hma: bool = True
    # Large still PNG decoded by libvips and WebP scaled by libwebp where they load (gate/hashing/vips.py,
    # gate/hashing/webp.py), else by Pillow. Always on; off only to measure the Pillow path beside it.
    libvips: bool = True
