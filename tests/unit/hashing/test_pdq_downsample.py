"""PDQ's 64×64 downsample, computed as weights: against pdqhash's own blur-and-decimate, value by value."""

from __future__ import annotations

import ctypes

import numpy as np
import numpy.typing as npt
import pdqhash
import pytest
from pdqhash import bindings

from gate.hashing.decode import Decoded
from gate.hashing.pdq import TRANSFORMS, pdq_of, to_hex
from gate.hashing.pdq_downsample import band, downsample
from gate.hashing.pdq_native import LUMA

# pdqFloat256FromFloatLuma(float*, float*, int, int, float(*)[64], float(*)[64], float(*)[16], int&):
# pdqhash's own downsample lands in its fifth argument.
_DOWNSAMPLE = "_ZN8facebook3pdq7hashing24pdqFloat256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRi"


def _pdq_buffer(luma: np.ndarray) -> np.ndarray:
    function = ctypes.CDLL(bindings.__file__)[_DOWNSAMPLE]
    function.restype = None
    work = np.array(luma, dtype=np.float32, order="C")
    scratch = np.zeros_like(work)
    out = np.empty((64, 64), np.float32)
    b16x64 = np.empty((16, 64), np.float32)
    b16x16 = np.empty((16, 16), np.float32)
    quality = ctypes.c_int(0)
    rows, cols = work.shape
    function(
        ctypes.c_void_p(work.ctypes.data),
        ctypes.c_void_p(scratch.ctypes.data),
        ctypes.c_int(rows),
        ctypes.c_int(cols),
        ctypes.c_void_p(out.ctypes.data),
        ctypes.c_void_p(b16x64.ctypes.data),
        ctypes.c_void_p(b16x16.ctypes.data),
        ctypes.byref(quality),
    )
    return out


def _image(height: int, width: int) -> npt.NDArray[np.uint8]:
    # Smooth structure plus noise: every weight shows, and the edges matter.
    rng = np.random.default_rng(height * 7919 + width)
    y, x = np.mgrid[0:height, 0:width]
    smooth = 127 + 100 * np.sin(x / (width / 7.3)) * np.cos(y / (height / 5.1))
    noisy = smooth + rng.normal(0, 25, (height, width))
    grey: npt.NDArray[np.uint8] = np.clip(noisy, 0, 255).astype(np.uint8)
    return grey


@pytest.mark.parametrize(
    ("height", "width"),
    [(1000, 1500), (1365, 2048), (768, 1024), (1001, 777), (600, 3000), (200, 131), (130, 20000)],
)
def test_weights_at_full_resolution_are_pdqs_own_blur_and_decimate(height: int, width: int) -> None:
    grey = _image(height, width)
    ours = downsample(grey, width, height, 1)
    theirs = _pdq_buffer(LUMA[grey])
    # The same sums in another order: equal to float rounding (values are 0-255).
    np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_rgb_is_weighted_through_pdqs_luma() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)
    luma = rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114
    np.testing.assert_allclose(downsample(rgb, 900, 700, 1), _pdq_buffer(luma), atol=2e-3)


@pytest.mark.parametrize("full", [513, 1000, 1024, 1365, 3024, 4031, 4032, 12345, 100_000])
@pytest.mark.parametrize("scale", [1, 2, 3, 4, 8])
def test_every_output_weighs_one_in_all(full: int, scale: int) -> None:
    # PDQ's box filter averages: each sample is a weighted mean, so its weights sum to 1.
    reduced = -(-full // scale)
    weights = band(full, reduced, scale).weights
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    assert (weights >= 0).all()


def test_a_reduced_image_hashes_like_the_full_one() -> None:
    # A 4× box-reduced image (what libjpeg's 1/4 scale approximates): the downsample from it hashes
    # within a few bits of pdqhash on every pixel, and its quality agrees.
    grey = _image(3024, 4032)
    reduced = grey.reshape(756, 4, 1008, 4).mean(axis=(1, 3)).round().astype(np.uint8)
    (fast,), quality = pdq_of(Decoded(pixels=reduced, width=4032, height=3024, scale=4))
    bits, want_quality = pdqhash.compute(np.repeat(grey[:, :, None], 3, axis=2))
    distance = (int(fast.hex, 16) ^ int(to_hex(bits), 16)).bit_count()
    assert distance <= 6
    assert abs(quality - int(want_quality)) <= 2


def test_dihedral_hashes_of_a_reduced_image_are_pdqhash_s_dihedral_set() -> None:
    grey = _image(1365, 2048)
    reduced = grey[:1364].reshape(682, 2, 1024, 2).mean(axis=(1, 3)).round().astype(np.uint8)
    decoded = Decoded(pixels=reduced, width=2048, height=1364, scale=2)
    found, _ = pdq_of(decoded, dihedral=True)
    want, _ = pdqhash.compute_dihedral(np.repeat(grey[:1364, :, None], 3, axis=2))
    assert [h.transform for h in found] == list(TRANSFORMS)
    for ours, theirs in zip(found, want, strict=True):
        assert (int(ours.hex, 16) ^ int(to_hex(theirs), 16)).bit_count() <= 8, ours.transform
