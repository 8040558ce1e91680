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
(tests/unit/test_hashing_fidelity.py: a median of 0 and a max of 2 bits on the reduced images, where
the box resize was 4 and 8): the resize only approximated PDQ's window, this reproduces it. Only the weights that can be non-zero are
applied (the band of each tent), with einsum: no BLAS, so no thread pool appears in a hashing worker.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gate.hashing.decode import Pixels

OUT = 64  # PDQ's downsample is 64×64
# PDQ's luma (ITU-R BT.601), the coefficients pdqhash applies to R, G, B.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Band:
    """For each of the 64 outputs along one axis: the reduced pixels it reads and their weights."""

    index: npt.NDArray[np.intp]  # 64 × S
    weights: Floats  # 64 × S


def downsample(pixels: Pixels, width: int, height: int, scale: int) -> Floats:
    """The 64×64 float luma PDQ computes from the full ``width`` × ``height`` image, from ``pixels``:
    that image reduced by ``scale`` per side (each pixel the mean of a ``scale`` × ``scale`` block,
    as libjpeg's DCT scaling and Pillow's ``reduce`` give), grey (H×W) or RGB (H×W×3)."""
    rows = band(height, pixels.shape[0], scale)
    cols = band(width, pixels.shape[1], scale)
    gathered = pixels[rows.index]  # 64 × S × W (× 3): only the rows some output reads
    if pixels.ndim == 2:
        across = np.einsum("ns,nsw->nw", rows.weights, gathered, dtype=np.float32)
    else:
        across = np.einsum("ns,nswc,c->nw", rows.weights, gathered, _LUMA, dtype=np.float32)
    result: Floats = np.einsum("ms,nms->nm", cols.weights, across[:, cols.index], dtype=np.float32)
    return np.ascontiguousarray(result)


@functools.lru_cache(maxsize=256)
def band(full: int, reduced: int, scale: int) -> Band:
    """The weights along one axis of ``full`` pixels, for an image reduced to ``reduced`` pixels."""
    weights = _full_weights(full)
    if -(-full // scale) == reduced:  # blocks of exactly ``scale`` pixels, the last one short
        starts = np.arange(0, full, scale)
    else:  # any other reduction: blocks in proportion
        starts = (np.arange(reduced) * full) // reduced
    per_pixel = np.add.reduceat(weights, starts, axis=1)
    nonzero = per_pixel != 0
    first = nonzero.argmax(axis=1)
    last = reduced - 1 - nonzero[:, ::-1].argmax(axis=1)
    width = int((last - first).max()) + 1
    first = np.minimum(first, reduced - width)
    index = first[:, None] + np.arange(width)
    return Band(index=index, weights=np.take_along_axis(per_pixel, index, axis=1).astype(np.float32))


def _full_weights(full: int) -> npt.NDArray[np.float64]:
    """64 × ``full``: the weight of each full-resolution pixel in each of PDQ's 64 samples.

    PDQ's box filter (downscaling.cpp, box1DFloat) averages, for output ``o``, the inputs
    ``o - (w - h) .. o + h - 1`` that exist, where ``w`` is the window and ``h = (w + 2) // 2``; it
    runs twice; ``decimateFloat`` then keeps output ``int((i + 0.5) * full / 64)``.
    """
    window = -(-full // (2 * OUT))
    half = (window + 2) // 2
    at = np.arange(full)
    lo = np.maximum(at - (window - half), 0)
    hi = np.minimum(at + half, full)  # exclusive
    samples = ((np.arange(OUT) + 0.5) * full / OUT).astype(np.intp)
    # Each sample reads the box around it; each pixel of that box is itself a box of the input. Add
    # every inner box as +c at its start and -c past its end, then one cumulative sum lays them out.
    steps = np.zeros((OUT, full + 1))
    for i, sample in enumerate(samples):
        inner = np.arange(lo[sample], hi[sample])
        share = 1.0 / (hi[sample] - lo[sample]) / (hi[inner] - lo[inner])
        np.add.at(steps[i], lo[inner], share)
        np.add.at(steps[i], hi[inner], -share)
    weights = np.cumsum(steps[:, :full], axis=1)
    weights[np.abs(weights) < 1e-12] = 0.0  # the sum's rounding leaves dust where the tent is zero
    return weights
