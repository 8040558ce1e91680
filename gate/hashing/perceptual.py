"""pHash and dHash via ``imagehash``, for operators whose local lists use them.

``imagehash`` pulls SciPy and PyWavelets, so it is an optional extra (``upload-gate[imagehash]``),
imported only when a policy rule asks for one of these hashes.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from PIL import Image

from gate.errors import GateError
from gate.hashing.decode import Pixels


class ImagehashMissing(GateError):
    def __init__(self) -> None:
        super().__init__(
            "pHash/dHash need the optional 'imagehash' package: pip install 'upload-gate[imagehash]'"
        )


def _imagehash() -> ModuleType:
    try:
        return importlib.import_module("imagehash")
    except ImportError:
        raise ImagehashMissing() from None


def perceptual(pixels: Pixels, *, phash: bool, dhash: bool) -> tuple[str | None, str | None]:
    """(pHash, dHash) as imagehash's 16-hex-digit strings; None for the ones not asked for.

    Computed from the same reduced pixels as PDQ (short side ≥ 512): both squeeze the image to a
    few dozen pixels, so the reduction does not move them.
    """
    if not (phash or dhash):
        return None, None
    module = _imagehash()
    image = Image.fromarray(pixels)
    return (
        str(module.phash(image)) if phash else None,
        str(module.dhash(image)) if dhash else None,
    )
