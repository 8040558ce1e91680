"""PDQ hashes of decoded pixels, formatted exactly as threatexchange (and so HMA) formats them.

Speed (issue 6): Meta's PDQ runs about twice as slow on images whose width is a multiple of 256 px
(its column pass then walks memory at a cache-hostile stride). The native path (gate/hashing/pdq_native.py)
pads such rows for its column passes; where pdqhash's own API is used instead, we hash the transposed
image and transpose the 16×16 bit matrix back: the DCT of a transposed image is the transposed DCT and
the median is unchanged, so the hash is bit-identical (tests/unit/hashing/test_pdq.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pdqhash

from gate.hashing.decode import Decoded, Luma, Pixels, rgb_luma
from gate.hashing.orientation import Orientation
from gate.hashing.pdq_downsample import Floats, downsample
from gate.hashing.pdq_native import LUMA, pdq_of_luma
from gate.types import PdqHash

# The order pdqhash.compute_dihedral returns its 8 hashes in; these names go into PdqHash.transform.
TRANSFORMS = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flipx",
    "flipy",
    "flipplus1",
    "flipminus1",
)

# Hashing the transposed image T(x) gives, for each transform D, the hash of D(T(x)) transposed back:
# T∘D∘T. Conjugating by the transpose swaps the two quarter turns and the two axis flips.
_UNDER_TRANSPOSE = {
    "original": "original",
    "rotate90": "rotate270",
    "rotate180": "rotate180",
    "rotate270": "rotate90",
    "flipx": "flipy",
    "flipy": "flipx",
    "flipplus1": "flipplus1",
    "flipminus1": "flipminus1",
}

_SLOW_WIDTH = 256

BitVector = npt.NDArray[np.integer]


def pdq_of(decoded: Decoded, *, dihedral: bool = False) -> tuple[tuple[PdqHash, ...], int]:
    """The PDQ hash (or the 8 dihedral hashes, ``original`` first) and quality of a decoded image: of
    its full-resolution pixels, or of PDQ's downsample computed from its reduced ones."""
    if decoded.scale is None:
        return pdq_hashes(decoded.pixels, dihedral=dihedral, luma=decoded.luma)
    return pdq_of_downsample(downsample_of(decoded), dihedral=dihedral)


def downsample_of(decoded: Decoded, orientation: Orientation | None = None) -> Floats:
    """PDQ's 64×64 downsample of the decoded picture, or of the picture as displayed after
    ``orientation`` (read through a view of the same pixels: nothing is decoded again)."""
    # A frame hashed exactly has both: its pixels are read here, as they always were.
    pixels: Pixels | Luma = decoded.pixels if decoded.luma is None or decoded.pixels.size else decoded.luma
    if orientation is None:
        return downsample(pixels, decoded.width, decoded.height, decoded.scale or 1)
    width, height = (
        (decoded.height, decoded.width) if orientation.transpose else (decoded.width, decoded.height)
    )
    mirrored = (orientation.flip_rows, orientation.flip_cols)
    return downsample(orientation.view(pixels), width, height, decoded.scale or 1, mirrored=mirrored)


def pdq_of_downsample(luma: Floats, *, dihedral: bool = False) -> tuple[tuple[PdqHash, ...], int]:
    """The PDQ hash (or 8 dihedral ones) and quality of PDQ's 64×64 downsample, which it consumes."""
    native = pdq_of_luma(luma, dihedral=dihedral)
    if native is None:  # pdqhash's own API takes bytes: the downsample rounded (a bit or two, rarely)
        return pdq_hashes(np.clip(np.rint(luma), 0, 255).astype(np.uint8), dihedral=dihedral)
    return _as_hashes(*native, dihedral=dihedral, transposed=False)


def pdq_hashes(
    pixels: Pixels, *, dihedral: bool = False, luma: Luma | None = None
) -> tuple[tuple[PdqHash, ...], int]:
    """The PDQ hash (or the 8 dihedral hashes, ``original`` first) and the quality (0–100). ``luma``:
    PDQ's luma of ``pixels`` where the decoder gave it already (``Decoded.luma``)."""
    if luma is None:
        # pdqhash's own luma without its float64 pass: a table for a grey image (every small JPEG),
        # Pillow's F conversion for colour (the same float32 values for all 2^24 colours:
        # gate/hashing/decode.py).
        luma = LUMA[pixels] if pixels.ndim == 2 else rgb_luma(pixels)
    native = pdq_of_luma(luma, dihedral=dihedral)
    if native is not None:
        return _as_hashes(*native, dihedral=dihedral, transposed=False)
    height, width = pixels.shape[:2]
    transposed = width % _SLOW_WIDTH == 0 and height % _SLOW_WIDTH != 0
    rgb = _rgb(pixels.swapaxes(0, 1) if transposed else pixels)
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(rgb)
        return _as_hashes(vectors, quality, dihedral=True, transposed=transposed)
    vector, quality = pdqhash.compute(rgb)
    return _as_hashes([vector], quality, dihedral=False, transposed=transposed)


def _as_hashes(
    vectors: Sequence[BitVector], quality: int, *, dihedral: bool, transposed: bool
) -> tuple[tuple[PdqHash, ...], int]:
    """pdqhash's bit vectors (``compute_dihedral``'s order) as PdqHashes; ``transposed``: they are the
    hashes of the transposed image, to be turned back."""
    names = TRANSFORMS if dihedral else TRANSFORMS[:1]
    found: dict[str, str] = {}
    for name, vector in zip(names, vectors, strict=True):
        if transposed:
            found[_UNDER_TRANSPOSE[name]] = to_hex(_transpose_bits(vector))
        else:
            found[name] = to_hex(vector)
    quality = int(quality)
    return tuple(PdqHash(hex=found[name], quality=quality, transform=name) for name in names), quality


def to_hex(vector: BitVector) -> str:
    """pdqhash's 256-bit vector (most significant bit first) as 64 lowercase hex digits.

    Same string as threatexchange's ``"%0*X" % (64, int(bits, 2))`` lowercased.
    """
    return np.packbits(np.asarray(vector, dtype=np.uint8)).tobytes().hex()


def distance(a: str, b: str) -> int:
    """Hamming distance between two hex PDQ hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _transpose_bits(vector: BitVector) -> BitVector:
    # Bit k of the hash is DCT coefficient (k // 16, k % 16); the vector lists bit 255 first, so its
    # 16×16 reshape is that matrix turned 180°, and transposing commutes with the half turn.
    return np.ascontiguousarray(np.asarray(vector).reshape(16, 16).T).reshape(256)


def _rgb(pixels: Pixels) -> Pixels:
    """The H×W×3 uint8 array pdqhash wants, with C-ordered rows.

    pdqhash computes its luma with numpy from channels 0–2 and hands the C++ code a pointer to that
    luma, assuming C order: a transposed *view* would silently be hashed as the untransposed image,
    so rows are always made contiguous here. A luma plane is presented as three channels by a
    zero-stride view (no copy): the wrapper only reads it.
    """
    if pixels.ndim == 2:
        luma = np.ascontiguousarray(pixels)
        return np.lib.stride_tricks.as_strided(
            luma, shape=(*luma.shape, 3), strides=(*luma.strides, 0), writeable=False
        )
    return np.ascontiguousarray(pixels[:, :, :3])
