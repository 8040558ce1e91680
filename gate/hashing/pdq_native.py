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

_values = np.arange(256)
# Exactly pdqhash's expression and evaluation order, per byte value.
LUMA: npt.NDArray[np.float32] = (_values * 0.299 + _values * 0.587 + _values * 0.114).astype(np.float32)
_BIT = np.arange(16, dtype=np.uint16)

Bits = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class _Native:
    single: Callable[..., None]
    dihedral: Callable[..., bool]


def _load() -> _Native | None:
    try:
        library = ctypes.CDLL(bindings.__file__)
        single, dihedral = library[_SYMBOL], library[_DIHEDRAL]
    except (OSError, AttributeError):
        return None
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    single.restype = None
    single.argtypes = (pointer, pointer, integer, integer, pointer, pointer, pointer, pointer, pointer)
    dihedral.restype = ctypes.c_bool
    dihedral.argtypes = (pointer, pointer, integer, integer, *(pointer,) * 4, *(pointer,) * 8, pointer)
    return _Native(single, dihedral)


def _hash(native: _Native, luma: npt.NDArray[np.float32], dihedral: bool) -> tuple[list[Bits], int]:
    """pdqhash's hashes of a float luma image. pdqhash blurs in place: ``luma`` is consumed (every
    caller passes a fresh array, so it is not copied again, unless it is read-only: numpy's view of
    Pillow's pixels is, and its memory is an immutable ``bytes``)."""
    luma = np.require(luma, np.float32, ("C", "W"))
    scratch = np.zeros_like(luma)  # as pdqhash passes it
    b64x64 = np.empty((64, 64), np.float32)
    b16x64 = np.empty((16, 64), np.float32)
    b16x16 = np.empty((16, 16), np.float32)
    words = np.zeros((8 if dihedral else 1, 16), np.uint16)
    quality = ctypes.c_int(0)
    rows, cols = luma.shape
    buffers = (luma.ctypes.data, scratch.ctypes.data, rows, cols, b64x64.ctypes.data, b16x64.ctypes.data)
    if dihedral:
        aux = np.empty((16, 16), np.float32)
        hashes = (words[k].ctypes.data for k in range(8))
        native.dihedral(*buffers, b16x16.ctypes.data, aux.ctypes.data, *hashes, ctypes.addressof(quality))
    else:
        native.single(*buffers, b16x16.ctypes.data, words.ctypes.data, ctypes.addressof(quality))
    # pdqhash's hash_to_vector: bit k is bit (k % 16) of word k // 16, listed from bit 255 down.
    return [((w[:, None] >> _BIT) & 1).astype(np.uint8).reshape(256)[::-1] for w in words], quality.value


def _proven(native: _Native) -> bool:
    rng = np.random.default_rng(20261124)
    samples = [
        rng.integers(0, 256, (97, 131), dtype=np.uint8),
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
    float luma image, which it consumes: ``LUMA[grey]`` gives pdqhash's luma of a grey image; on the
    64×64 downsample of gate/hashing/pdq_downsample.py PDQ's own blur has a 1 px window, a no-op up
    to float rounding. None when the native path is not available."""
    native = _native()
    return None if native is None else _hash(native, luma, dihedral)
