"""PDQ's 64×64 downsample of a full-resolution image, computed from a reduced copy of it.

PDQ blurs the whole image with two box passes per axis (window ``ceil(side / 128)``) and then keeps
64 samples per axis. Both steps are linear, so each of the 64 outputs per axis is a fixed weighting
of the input pixels: a tent about 2 windows wide. The weights are computed here once per image size,
at full resolution, exactly as PDQ's box filter lays them (its uneven window and its shrunken windows
at the edges), and then summed over the block of full-resolution pixels each reduced pixel averages.
Applied to the reduced image, they give what PDQ's blur gives on the full image, up to how far the
pixels inside one block differ from their mean.

Why: on a 12 MP JPEG decoded at 1/4 scale, this costs ~0.3 ms where shrinking the image to PDQ's
window and letting pdqhash blur it cost ~4.5 ms, and it is closer to HMA's full-resolution hash
(tests/unit/hashing/test_fidelity.py: a median of 0 and a max of 2 bits on the reduced images, where
the box resize was 4 and 8): the resize only approximated PDQ's window, this reproduces it. Only the
weights that can be non-zero are applied (the band of each tent), with einsum: no BLAS, so no thread
pool appears in a hashing worker.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gate.hashing.decode import Luma, Pixels

OUT = 64  # PDQ's downsample is 64×64
# PDQ's luma (ITU-R BT.601), the coefficients pdqhash applies to R, G, B.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Band:
    """For each of the 64 outputs along one axis: the reduced pixels it reads and their weights."""

    index: npt.NDArray[np.intp]  # 64 × S
    weights: Floats  # 64 × S


def downsample(
    pixels: Pixels | Luma,
    width: int,
    height: int,
    scale: int,
    *,
    mirrored: tuple[bool, bool] = (False, False),
) -> Floats:
    """The 64×64 float luma PDQ computes from the full ``width`` × ``height`` image, from ``pixels``:
    that image reduced by ``scale`` per side (each pixel the mean of a ``scale`` × ``scale`` block,
    as libjpeg's DCT scaling and Pillow's ``reduce`` give), grey (H×W) or RGB (H×W×3), or PDQ's luma
    of it (H×W floats, ``Decoded.luma``).

    ``pixels`` may be a turned or mirrored view of the reduced image (the picture as displayed after
    its EXIF orientation); ``mirrored`` says which of its axes (rows, columns) run backwards through
    the blocks, whose short one is then first."""
    rows = band(height, pixels.shape[0], scale, mirrored=mirrored[0])
    cols = band(width, pixels.shape[1], scale, mirrored=mirrored[1])
    gathered = pixels[rows.index]  # 64 × S × W (× 3): only the rows some output reads
    if pixels.ndim == 3:
        # Luma of the gathered rows only, channel by channel (a third of the time of one einsum over
        # the channels, and no BLAS call: no thread pool in a hashing worker).
        rgb = gathered.astype(np.float32)
        gathered = rgb[..., 0] * _LUMA[0] + rgb[..., 1] * _LUMA[1] + rgb[..., 2] * _LUMA[2]
    across = np.einsum("ns,nsw->nw", rows.weights, gathered, dtype=np.float32)
    result: Floats = np.einsum("ms,nms->nm", cols.weights, across[:, cols.index], dtype=np.float32)
    return np.ascontiguousarray(result)


@functools.lru_cache(maxsize=256)
def band(full: int, reduced: int, scale: int, *, mirrored: bool = False) -> Band:
    """The weights along one axis of ``full`` pixels, for an image reduced to ``reduced`` pixels.

    PDQ's box filter (downscaling.cpp, box1DFloat) averages, for output ``o``, the inputs
    ``o - (w - h) .. o + h - 1`` that exist, where ``w`` is the window and ``h = (w + 2) // 2``; it
    runs twice; ``decimateFloat`` then keeps output ``int((i + 0.5) * full / 64)``. Each sample is
    worked out over its own span only (~4 windows), so a very long side costs no full-length arrays.
    """
    if -(-full // scale) == reduced:  # blocks of exactly ``scale`` pixels, the last one short
        starts = np.arange(0, full, scale)
    else:  # any other reduction: blocks in proportion
        starts = (np.arange(reduced) * full) // reduced
    if mirrored:  # the same blocks, counted from the far edge
        starts = (full - np.append(starts, full)[::-1])[:-1]
    window = -(-full // (2 * OUT))
    half = (window + 2) // 2
    samples = ((np.arange(OUT) + 0.5) * full / OUT).astype(np.intp)
    firsts: list[int] = []
    rows: list[npt.NDArray[np.float64]] = []
    for sample in samples:
        inner = np.arange(max(sample - (window - half), 0), min(sample + half, full))  # the first box
        lo = np.maximum(inner - (window - half), 0)  # ...and the box around each of its pixels
        hi = np.minimum(inner + half, full)
        share = 1.0 / inner.size / (hi - lo)
        # Each inner box adds +share from its start and -share past its end; a running sum lays them out.
        origin, end = int(lo[0]), int(hi[-1])
        steps = np.zeros(end - origin + 1)
        np.add.at(steps, lo - origin, share)
        np.add.at(steps, hi - origin, -share)
        weights = np.cumsum(steps[:-1])
        # Onto the reduced pixels: the block each full-resolution pixel falls in.
        blocks = np.searchsorted(starts, np.arange(origin, end), side="right") - 1
        firsts.append(int(blocks[0]))
        rows.append(np.asarray(np.bincount(blocks - blocks[0], weights=weights), dtype=np.float64))
    width = max(row.size for row in rows)
    index = np.empty((OUT, width), np.intp)
    out = np.zeros((OUT, width), np.float32)
    for i, (block, row) in enumerate(zip(firsts, rows, strict=True)):
        first = max(0, min(block, reduced - width))  # near the far edge: read further back, weight 0
        index[i] = first + np.arange(width)
        out[i, block - first : block - first + row.size] = row
    return Band(index=index, weights=out)
