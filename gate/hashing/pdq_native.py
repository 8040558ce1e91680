"""PDQ of a grey image through pdqhash's own C++ entry point, without its float64 luma pass.

``pdqhash.compute`` first turns an RGB array into float luma with numpy
(``R*0.299 + G*0.587 + B*0.114`` in float64, then float32): three float64 temporaries per pixel,
~45 % of its time on the reduced images the gate hashes. Every JPEG the gate hashes is decoded
straight to its Y plane, so R = G = B and that luma is a function of one byte: a 256-entry table
gives the same float32 values, bit for bit, in a fraction of the time. The table's values are then
handed to the very function ``compute`` calls next (``pdqHash256FromFloatLuma``, an exported symbol
of pdqhash's extension module), so the hash is pdqhash's own.

This reaches below pdqhash's Python API, so it proves itself before use: on first use it hashes test
images both ways and is used only if every hash and quality agree; otherwise (another pdqhash build,
a missing symbol) ``pdq_of_grey`` returns None and the caller uses ``pdqhash.compute``. The foreign
call also releases the GIL, which ``pdqhash.compute`` holds.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pdqhash
from pdqhash import bindings

log = logging.getLogger(__name__)

# facebook::pdq::hashing::pdqHash256FromFloatLuma(float*, float*, int, int, float(*)[64],
# float(*)[64], float(*)[16], Hash256&, int&), as the Itanium C++ ABI spells it.
_SYMBOL = "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi"

_values = np.arange(256)
# Exactly pdqhash's expression and evaluation order, per byte value.
LUMA: npt.NDArray[np.float32] = (_values * 0.299 + _values * 0.587 + _values * 0.114).astype(np.float32)
_BIT = np.arange(16, dtype=np.uint16)

Bits = npt.NDArray[np.uint8]


def _load() -> Callable[..., None] | None:
    try:
        function = ctypes.CDLL(bindings.__file__)[_SYMBOL]
    except (OSError, AttributeError):
        return None
    function.restype = None
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    function.argtypes = (pointer, pointer, integer, integer, pointer, pointer, pointer, pointer, pointer)
    return function


def _hash(function: Callable[..., None], grey: npt.NDArray[np.uint8]) -> tuple[Bits, int]:
    luma = np.ascontiguousarray(LUMA[grey])
    scratch = np.zeros_like(luma)  # as pdqhash passes it
    b64x64 = np.empty((64, 64), np.float32)
    b16x64 = np.empty((16, 64), np.float32)
    b16x16 = np.empty((16, 16), np.float32)
    words = np.zeros(16, np.uint16)
    quality = ctypes.c_int(0)
    rows, cols = luma.shape
    function(
        luma.ctypes.data,
        scratch.ctypes.data,
        rows,
        cols,
        b64x64.ctypes.data,
        b16x64.ctypes.data,
        b16x16.ctypes.data,
        words.ctypes.data,
        ctypes.addressof(quality),
    )
    # pdqhash's hash_to_vector: bit k is bit (k % 16) of word k // 16, listed from bit 255 down.
    bits = ((words[:, None] >> _BIT) & 1).astype(np.uint8).reshape(256)[::-1]
    return bits, quality.value


def _proven(function: Callable[..., None]) -> bool:
    rng = np.random.default_rng(20261124)
    samples = [
        rng.integers(0, 256, (97, 131), dtype=np.uint8),
        np.add.outer(np.arange(300), np.arange(200)).astype(np.uint8),
        rng.integers(0, 256, (640, 512), dtype=np.uint8),
    ]
    for grey in samples:
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        want_bits, want_quality = pdqhash.compute(rgb)
        bits, quality = _hash(function, grey)
        if quality != want_quality or not np.array_equal(bits, np.asarray(want_bits, dtype=np.uint8)):
            return False
    return True


@functools.cache
def _function() -> Callable[..., None] | None:
    """The entry point once proven (on first use, not at import: the gate's own process, which hands
    every image to a worker, never pays for the proof; workers run it as they start)."""
    function = _load()
    if function is not None and not _proven(function):
        log.warning("pdqhash's native entry point disagrees with pdqhash.compute here; not using it")
        return None
    return function


def available() -> bool:
    return _function() is not None


def pdq_of_grey(grey: npt.NDArray[np.uint8]) -> tuple[Bits, int] | None:
    """(256 bits, most significant first; quality) of a 2-D uint8 image, as ``pdqhash.compute`` gives
    for that image in three equal channels; None when the native path is not available."""
    function = _function()
    return None if function is None else _hash(function, grey)
