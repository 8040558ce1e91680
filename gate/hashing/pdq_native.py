"""PDQ through pdqhash's own exported C++ entry points, from float luma the gate prepares itself.

``pdqhash.compute`` first turns an RGB array into float luma with numpy
(``R*0.299 + G*0.587 + B*0.114`` in float64, then float32): three float64 temporaries per pixel.
None of the inputs need that:
- grey images (every JPEG is decoded straight to its Y plane): R = G = B, so the luma is a function
  of one byte, and a 256-entry table (``LUMA``) gives the same float32 values, bit for bit;
- colour images: Pillow's RGB→F conversion computes the same float32 values for all 2^24 colours
  (gate/hashing/decode.py ``rgb_luma``), ~3× faster than pdqhash's float64 pass;
- the 64×64 downsample of gate/hashing/pdq_downsample.py, already float luma.
The luma is handed to the very functions ``compute`` and ``compute_dihedral`` call next
(``pdqHash256FromFloatLuma``, ``pdqDihedralHash256esFromFloatLuma``), so the hashes are pdqhash's own.

Full-resolution images (issue 18): those functions blur the whole image with PDQ's box filter, two
passes along the rows and two down the columns (``jaroszFilterFloat``), then keep 64×64 samples.
Walking down a column of an image whose width is a multiple of 128 px (1024×768, 1280×960, 512...)
hits the same few cache sets at every step: the 1024×768 picture many clients upload took ~14 ms where
1000×750 takes ~3 ms. So the same steps are called here one by one, from the same library: the column
passes read a copy whose rows are padded by one cache line (each column is filtered on its own, so
the padding changes no value), and the last column pass runs on the 64 columns that are kept only.
Then ``pdqFloat256FromFloatLuma`` on the 64×64 samples (it takes a 64×64 image as already
downsampled: no blur) and ``pdqBuffer16x16ToBits``, with the dihedral DCT turns, as the entry points
do. Every float operation is the library's own, on the same values in the same order, so the hashes
and quality are the same bit for bit (checked on first use, and by tests/unit/hashing/test_pdq_native.py).

This reaches below pdqhash's Python API, so it proves itself before use: on first use it hashes test
images both ways and is used only if every hash and quality agree; otherwise (another pdqhash build,
a missing symbol) ``pdq_of_luma`` returns None and the caller uses pdqhash's Python API. The foreign
call also releases the GIL, which ``pdqhash.compute`` holds.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pdqhash
from pdqhash import bindings

log = logging.getLogger(__name__)

# facebook::pdq::hashing::pdqHash256FromFloatLuma(float*, float*, int, int, float(*)[64],
# float(*)[64], float(*)[16], Hash256&, int&), as the Itanium C++ ABI spells it.
_SYMBOL = "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi"
# pdqDihedralHash256esFromFloatLuma(float*, float*, int, int, float(*)[64], float(*)[64], float(*)[16],
# float(*)[16], Hash256* × 8, int&): the 8 dihedral hashes, in pdqhash.compute_dihedral's order.
_DIHEDRAL = (
    "_ZN8facebook3pdq7hashing33pdqDihedralHash256esFromFloatLumaEPfS2_iiPA64_fS4_PA16_fS6_"
    "PNS1_7Hash256ES8_S8_S8_S8_S8_S8_S8_Ri"
)

# The steps those two are made of (gate/hashing/pdq_native.py's docstring): the box filter along rows and
# along columns (in, out, rows, cols, window), the 64×64 image to its 16×16 DCT and quality, that DCT to
# bits (float[16][16], Hash256*), and the DCT of each dihedral turn (in, out), in compute_dihedral's order.
_STEPS = {
    "box_rows": "_ZN8facebook3pdq11downscaling17boxAlongRowsFloatEPKfPfiii",
    "box_cols": "_ZN8facebook3pdq11downscaling17boxAlongColsFloatEPKfPfiii",
    "dct": "_ZN8facebook3pdq7hashing24pdqFloat256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRi",
    "bits": "_ZN8facebook3pdq7hashing20pdqBuffer16x16ToBitsEPA16_fPNS1_7Hash256E",
}
_TURNS = (
    "_ZN8facebook3pdq7hashing23dct16OriginalToRotate90EPA16_fS3_",
    "_ZN8facebook3pdq7hashing24dct16OriginalToRotate180EPA16_fS3_",
    "_ZN8facebook3pdq7hashing24dct16OriginalToRotate270EPA16_fS3_",
    "_ZN8facebook3pdq7hashing20dct16OriginalToFlipXEPA16_fS3_",
    "_ZN8facebook3pdq7hashing20dct16OriginalToFlipYEPA16_fS3_",
    "_ZN8facebook3pdq7hashing24dct16OriginalToFlipPlus1EPA16_fS3_",
    "_ZN8facebook3pdq7hashing25dct16OriginalToFlipMinus1EPA16_fS3_",
)
# pdqhashing.cpp's MIN_HASHABLE_DIM: a smaller side gets the zero hash and quality 0.
_MIN_SIDE = 5
OUT = 64  # PDQ's downsample is 64×64
# A row stride of a multiple of this many floats (512 bytes) makes a column walk cache-hostile; such
# rows are padded by one cache line for the column passes.
_ALIASED = 128
_PAD = 16

_values = np.arange(256)
# Exactly pdqhash's expression and evaluation order, per byte value.
LUMA: npt.NDArray[np.float32] = (_values * 0.299 + _values * 0.587 + _values * 0.114).astype(np.float32)
_BIT = np.arange(16, dtype=np.uint16)

Bits = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class _Native:
    single: Callable[..., None]
    dihedral: Callable[..., bool]
    box_rows: Callable[..., None]
    box_cols: Callable[..., None]
    dct: Callable[..., None]
    bits: Callable[..., None]
    turns: tuple[Callable[..., None], ...]


def _load() -> _Native | None:
    try:
        library = ctypes.CDLL(bindings.__file__)
        single, dihedral = library[_SYMBOL], library[_DIHEDRAL]
        steps = {name: library[symbol] for name, symbol in _STEPS.items()}
        turns = tuple(library[symbol] for symbol in _TURNS)
    except (OSError, AttributeError):
        return None
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    single.restype = None
    single.argtypes = (pointer, pointer, integer, integer, pointer, pointer, pointer, pointer, pointer)
    dihedral.restype = ctypes.c_bool
    dihedral.argtypes = (pointer, pointer, integer, integer, *(pointer,) * 4, *(pointer,) * 8, pointer)
    for box in (steps["box_rows"], steps["box_cols"]):
        box.restype = None
        box.argtypes = (pointer, pointer, integer, integer, integer)
    steps["dct"].restype = None
    steps["dct"].argtypes = (pointer, pointer, integer, integer, pointer, pointer, pointer, pointer)
    for two in (steps["bits"], *turns):
        two.restype = None
        two.argtypes = (pointer, pointer)
    return _Native(single, dihedral, turns=turns, **steps)


def _hash(native: _Native, luma: npt.NDArray[np.float32], dihedral: bool) -> tuple[list[Bits], int]:
    """pdqhash's hashes of a float luma image, which is only read. A full-size image goes through
    ``_samples``; a 64×64 one (PDQ's downsample) or one too small to hash goes to the entry points as
    it is, on a copy (pdqhash blurs in place; a copy of 64×64 floats costs nothing)."""
    rows, cols = luma.shape
    words = np.zeros((8 if dihedral else 1, 16), np.uint16)
    quality = ctypes.c_int(0)
    b64x64 = np.empty((OUT, OUT), np.float32)
    b16x64 = np.empty((16, OUT), np.float32)
    b16x16 = np.empty((16, 16), np.float32)
    if min(rows, cols) >= _MIN_SIDE and (rows, cols) != (OUT, OUT):
        samples = _samples(native, np.require(luma, np.float32, "C"))
        unused = np.empty_like(samples)  # the entry point's second buffer; a 64×64 image is not blurred
        pointers = (b64x64.ctypes.data, b16x64.ctypes.data, b16x16.ctypes.data)
        native.dct(samples.ctypes.data, unused.ctypes.data, OUT, OUT, *pointers, ctypes.addressof(quality))
        native.bits(b16x16.ctypes.data, words[0].ctypes.data)
        if dihedral:
            turned = np.empty((16, 16), np.float32)
            for word, turn in zip(words[1:], native.turns, strict=True):
                turn(b16x16.ctypes.data, turned.ctypes.data)
                native.bits(turned.ctypes.data, word.ctypes.data)
        return _vectors(words), quality.value
    luma = np.array(luma, np.float32, order="C")
    scratch = np.zeros_like(luma)  # as pdqhash passes it
    buffers = (luma.ctypes.data, scratch.ctypes.data, rows, cols, b64x64.ctypes.data, b16x64.ctypes.data)
    if dihedral:
        aux = np.empty((16, 16), np.float32)
        hashes = (words[k].ctypes.data for k in range(8))
        native.dihedral(*buffers, b16x16.ctypes.data, aux.ctypes.data, *hashes, ctypes.addressof(quality))
    else:
        native.single(*buffers, b16x16.ctypes.data, words.ctypes.data, ctypes.addressof(quality))
    return _vectors(words), quality.value


def _vectors(words: npt.NDArray[np.uint16]) -> list[Bits]:
    # pdqhash's hash_to_vector: bit k is bit (k % 16) of word k // 16, listed from bit 255 down.
    return [((w[:, None] >> _BIT) & 1).astype(np.uint8).reshape(256)[::-1] for w in words]


def _samples(native: _Native, luma: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The 64×64 samples ``jaroszFilterFloat`` and ``decimateFloat`` leave of a C-ordered ``luma``
    (which is only read): the same box passes in the same order, the column passes cache-friendly."""
    rows, cols = luma.shape
    # computeJaroszFilterWindowSize(side, 64)
    along_rows, along_cols = (cols + 2 * OUT - 1) // (2 * OUT), (rows + 2 * OUT - 1) // (2 * OUT)
    first = np.empty_like(luma)
    native.box_rows(luma.ctypes.data, first.ctypes.data, rows, cols, along_rows)
    if cols % _ALIASED:
        second = np.empty_like(first)
        native.box_cols(first.ctypes.data, second.ctypes.data, rows, cols, along_cols)
    else:  # read from rows padded by a cache line; the padding columns are filtered too, and dropped
        padded = np.zeros((rows, cols + _PAD), np.float32)
        padded[:, :cols] = first
        filtered = np.empty_like(padded)
        native.box_cols(padded.ctypes.data, filtered.ctypes.data, rows, cols + _PAD, along_cols)
        second = np.ascontiguousarray(filtered[:, :cols])
    native.box_rows(second.ctypes.data, first.ctypes.data, rows, cols, along_rows)
    # The last column pass, on the 64 columns decimateFloat keeps only: each column is its own.
    kept = np.ascontiguousarray(first[:, _decimated(cols)])
    out = np.empty_like(kept)
    native.box_cols(kept.ctypes.data, out.ctypes.data, rows, OUT, along_cols)
    return np.ascontiguousarray(out[_decimated(rows)])


@functools.lru_cache(maxsize=256)
def _decimated(side: int) -> npt.NDArray[np.intp]:
    """decimateFloat's samples along a side: ``(int)(((i + 0.5) * side) / 64)``, in doubles."""
    return ((np.arange(OUT) + 0.5) * side / OUT).astype(np.intp)


def _proven(native: _Native) -> bool:
    rng = np.random.default_rng(20261124)
    # Both ways through ``_hash``: blurred step by step (with and without padded column passes), and
    # the entry points themselves (64×64).
    samples = [
        rng.integers(0, 256, (97, 131), dtype=np.uint8),
        rng.integers(0, 256, (64, 64), dtype=np.uint8),
        np.add.outer(np.arange(300), np.arange(200)).astype(np.uint8),
        rng.integers(0, 256, (640, 512), dtype=np.uint8),
    ]
    for grey in samples:
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        want_bits, want_quality = pdqhash.compute(rgb)
        (bits,), quality = _hash(native, LUMA[grey], dihedral=False)
        if quality != want_quality or not np.array_equal(bits, np.asarray(want_bits, dtype=np.uint8)):
            return False
        want_all, want_quality = pdqhash.compute_dihedral(rgb)
        found, quality = _hash(native, LUMA[grey], dihedral=True)
        if quality != want_quality or not all(
            np.array_equal(a, np.asarray(b, dtype=np.uint8)) for a, b in zip(found, want_all, strict=True)
        ):
            return False
    return True


@functools.cache
def _native() -> _Native | None:
    """The entry points once proven (on first use, not at import: the gate's own process, which hands
    every image to a worker, never pays for the proof; workers run it as they start)."""
    native = _load()
    if native is not None and not _proven(native):
        log.warning("pdqhash's native entry points disagree with pdqhash here; not using them")
        return None
    return native


def available() -> bool:
    return _native() is not None


def pdq_of_luma(luma: npt.NDArray[np.float32], *, dihedral: bool) -> tuple[list[Bits], int] | None:
    """pdqhash's hash (or its 8 dihedral hashes, in ``compute_dihedral``'s order) and quality of a
    float luma image (only read): ``LUMA[grey]`` gives pdqhash's luma of a grey image. The 64×64
    downsample of gate/hashing/pdq_downsample.py is hashed as it is (pdqhash takes a 64×64 image as
    already downsampled), except that ``compute_dihedral`` still blurs it with a 1 px window, a no-op
    up to float rounding. None when the native path is not available."""
    native = _native()
    return None if native is None else _hash(native, luma, dihedral)
