"""Large still WebP decoded scaled by libwebp itself, called directly (issue 18, target 4).

Why not through libvips (gate/hashing/vips.py, which did this before): the libwebp inside the
``pyvips-binary`` wheel is built for size, and its decode runs libwebp's plain C paths (a profile of
``webpload`` shows the scalar inverse DCT and rescaler, not the SSE2 ones). The same scaled decode of
a 12 MP photo took 53-61 ms through libvips and 37-42 ms through the libwebp Pillow ships, on the
same bytes in the same run (``python -m bench --only hashing`` prints both). No wheel exposes
libwebp's scaled decode (Pillow's plugin, ``webp`` and ``imagecodecs`` decode every pixel), so it is
called here through its public, versioned C API: ``WebPGetFeatures``, then ``WebPDecode`` with
``use_scaling`` into a numpy array (one output buffer, no copy). Nothing here parses the bytes.

Which libwebp, and the trust boundary: the one Pillow's WebP plugin links (the wheel's
``pillow.libs``, or ``.dylibs`` on macOS; else the system's, which a Pillow built from source links).
It is the decoder that already reads every WebP upload on the Pillow path, in the same hashing worker
processes: no new code reads hostile bytes, and no new dependency. It is loaded in the workers only,
after their fork (gate/hashing/worker.py). ``WebPInitDecoderConfigInternal`` refuses a library of
another ABI major version than the structures below (then the Pillow path decodes). libwebp is told
to use one thread (the pool sizes the parallelism). The bomb limit was checked from the header
before this is reached, and the worker's SIGALRM deadline ends the process inside libwebp as inside
Pillow. Any status but OK (truncated, corrupt, unsupported) leaves the file to the Pillow path and
its verdict.

What comes here: gate/hashing/vips.py decides (a still without alpha, over 1 MP, whose sides the scale
divides), and the pixels are what libvips' ``webpload`` gave at the same scale: libwebp's rescaler
averages the area each output pixel covers (tests/unit/hashing/test_webp.py compares them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL

from gate.hashing.decode import Pixels

log = logging.getLogger(__name__)

# decode.h's WEBP_DECODER_ABI_VERSION of the layout below (unchanged since libwebp 0.5; the library
# checks the major byte, 2, and later minor versions only use the padding).
_ABI = 0x0209
_MODE_RGB = 0
_VP8_STATUS_OK = 0


class _Features(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("has_alpha", ctypes.c_int),
        ("has_animation", ctypes.c_int),
        ("format", ctypes.c_int),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _RGBA(ctypes.Structure):
    _fields_ = [("rgba", ctypes.c_void_p), ("stride", ctypes.c_int), ("size", ctypes.c_size_t)]


class _YUVA(ctypes.Structure):
    _fields_ = [
        *((name, ctypes.c_void_p) for name in ("y", "u", "v", "a")),
        *((name, ctypes.c_int) for name in ("y_stride", "u_stride", "v_stride", "a_stride")),
        *((name, ctypes.c_size_t) for name in ("y_size", "u_size", "v_size", "a_size")),
    ]


class _Buffers(ctypes.Union):
    _fields_ = [("RGBA", _RGBA), ("YUVA", _YUVA)]


class _DecBuffer(ctypes.Structure):
    _fields_ = [
        ("colorspace", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("is_external_memory", ctypes.c_int),
        ("u", _Buffers),
        ("pad", ctypes.c_uint32 * 4),
        ("private_memory", ctypes.c_void_p),
    ]


_OPTIONS = (
    *("bypass_filtering", "no_fancy_upsampling"),
    *("use_cropping", "crop_left", "crop_top", "crop_width", "crop_height"),
    *("use_scaling", "scaled_width", "scaled_height"),
    *("use_threads", "dithering_strength", "flip", "alpha_dithering_strength"),
)


class _Options(ctypes.Structure):
    _fields_ = [*((name, ctypes.c_int) for name in _OPTIONS), ("pad", ctypes.c_uint32 * 5)]


class _Config(ctypes.Structure):
    _fields_ = [("input", _Features), ("output", _DecBuffer), ("options", _Options)]


@functools.cache
def _libwebp() -> ctypes.CDLL | None:
    """Pillow's libwebp with its decode API typed; None where none loads (the Pillow path is used)."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.WebPGetDecoderVersion.restype = ctypes.c_int
            lib.WebPGetDecoderVersion.argtypes = []
            lib.WebPInitDecoderConfigInternal.restype = ctypes.c_int
            lib.WebPInitDecoderConfigInternal.argtypes = [ctypes.POINTER(_Config), ctypes.c_int]
            lib.WebPGetFeaturesInternal.restype = ctypes.c_int
            lib.WebPGetFeaturesInternal.argtypes = [
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.POINTER(_Features),
                ctypes.c_int,
            ]
            lib.WebPDecode.restype = ctypes.c_int
            lib.WebPDecode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Config)]
            lib.WebPFreeDecBuffer.restype = None
            lib.WebPFreeDecBuffer.argtypes = [ctypes.POINTER(_DecBuffer)]
            if not lib.WebPInitDecoderConfigInternal(ctypes.byref(_Config()), _ABI):
                raise OSError(f"{path}: another decoder ABI than {_ABI:#06x}")
        except (OSError, AttributeError) as exc:  # not loadable, not libwebp, another ABI
            log.warning("libwebp at %s not used: %s", path, exc)
            continue
        return lib
    log.warning("no libwebp found beside Pillow's: large WebP are decoded by libvips or Pillow")
    return None


def _candidates() -> Iterator[str]:
    """Where Pillow's WebP plugin finds its libwebp: the wheel's own copy first, then the system's
    (looked up only when the wheel has none: ``find_library`` runs ``ldconfig``)."""
    package = Path(PIL.__file__).parent
    yield from sorted(str(p) for p in (package.parent / "pillow.libs").glob("libwebp-*.so*"))
    yield from sorted(str(p) for p in (package / ".dylibs").glob("libwebp.*dylib"))
    if system := ctypes.util.find_library("webp"):
        yield system


def available() -> bool:
    """Loads libwebp (in a hashing worker: after the fork)."""
    return _libwebp() is not None


def version() -> str | None:
    """The libwebp used, as ``major.minor.patch`` (for the benchmark's notes)."""
    lib = _libwebp()
    if lib is None:
        return None
    v = int(lib.WebPGetDecoderVersion())
    return f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"


def scaled(body: bytes, width: int, height: int, factor: int) -> Pixels | None:
    """The still WebP ``body`` (``width`` × ``height``, no alpha, no animation, as Pillow read its
    header) decoded by libwebp at 1/``factor`` per side, which must divide both: H×W×3 RGB. None when
    libwebp is not loaded, reads another picture from the header, or reports any error."""
    lib = _libwebp()
    if lib is None or width % factor or height % factor:
        return None
    config = _Config()
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(config), _ABI):
        return None
    if lib.WebPGetFeaturesInternal(body, len(body), ctypes.byref(config.input), _ABI) != _VP8_STATUS_OK:
        return None
    features = config.input
    if (features.width, features.height) != (width, height) or features.has_alpha or features.has_animation:
        return None
    pixels = np.empty((height // factor, width // factor, 3), np.uint8)
    output = config.output
    output.colorspace = _MODE_RGB
    output.is_external_memory = 1  # libwebp writes into ``pixels``, and allocates no output of its own
    output.u.RGBA.rgba = pixels.ctypes.data
    output.u.RGBA.stride = pixels.strides[0]
    output.u.RGBA.size = pixels.nbytes
    options = config.options
    options.use_scaling = 1
    options.scaled_width, options.scaled_height = pixels.shape[1], pixels.shape[0]
    options.use_threads = 0
    try:
        status = lib.WebPDecode(body, len(body), ctypes.byref(config))
    finally:
        lib.WebPFreeDecBuffer(ctypes.byref(config.output))
    return pixels if status == _VP8_STATUS_OK else None
