"""A brute-force Hamming index over fixed-width hashes (PDQ 256 bits, phash/dhash 64 bits).

Hashes are stored word-major (one contiguous uint64 array per 64-bit word), so a query is a few
vectorised XOR + ``np.bitwise_count`` passes. For wide hashes the first half of the words prunes: the
distance over half the bits is a lower bound of the full distance, and for a selective threshold (31 of
256) almost nothing survives it, so the second half is computed only for a handful of candidates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
Ints = npt.NDArray[np.intp]


def hex_to_words(hexes: Sequence[str], bits: int) -> U64:
    """``(words, n)`` native uint64, word-major. The byte order only has to agree with the query's."""
    width = bits // 64
    if not hexes:
        return np.zeros((width, 0), dtype=np.uint64)
    raw = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8").reshape(len(hexes), width)
    return np.ascontiguousarray(raw.T.astype(np.uint64))


class HammingIndex:
    def __init__(self, hexes: Sequence[str], bits: int) -> None:
        if bits % 64:
            raise ValueError("bits must be a multiple of 64")
        self.bits = bits
        self.words = hex_to_words(hexes, bits)

    def __len__(self) -> int:
        return int(self.words.shape[1])

    def search(self, query_hex: str, max_distance: int) -> tuple[Ints, npt.NDArray[np.uint16]]:
        """Indices of every stored hash within ``max_distance`` bits (inclusive), and their distances."""
        query = hex_to_words([query_hex], self.bits)[:, 0]
        width = self.words.shape[0]
        half = max(1, width // 2)
        dist = np.bitwise_count(self.words[0] ^ query[0]).astype(np.uint16)
        for w in range(1, half):
            dist += np.bitwise_count(self.words[w] ^ query[w])
        idx = np.flatnonzero(dist <= max_distance)
        if half == width or idx.size == 0:
            return idx, dist[idx]
        rest = dist[idx]
        for w in range(half, width):
            rest += np.bitwise_count(self.words[w][idx] ^ query[w])
        keep = rest <= max_distance
        return idx[keep], rest[keep]
