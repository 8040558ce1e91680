"""An exact Hamming index over fixed-width hashes (PDQ 256 bits, phash/dhash 64 bits).

Two exact methods, one answer (tests/unit/matching/test_pdq_index.py checks both against a plain popcount):

- **Multi-index hashing** (Norouzi et al.): every hash is cut into 16-bit chunks (16 for PDQ), and each
  chunk position has a table from chunk value to the rows holding it. If two hashes are within ``t``
  bits, by pigeonhole one of the ``m`` chunks differs in at most ``t // m`` bits (for PDQ at 31: at most
  one bit). So probing, in every table, the query's chunk and its values within ``t // m`` bits yields a
  superset of the answer, which the full distance then filters. At 1M hashes and 31 bits that is 272
  small buckets (~4k candidates) instead of a million popcounts. Memory: one uint32 row id per hash per
  chunk (64 MB per 1M PDQ hashes) plus 256 KB of bucket offsets per chunk.
- **Brute force**, word-major (one contiguous uint64 array per 64-bit word): a few vectorised
  XOR + ``np.bitwise_count`` passes, pruned after half the words. Used when the index is small, or the
  threshold so wide that the chunk probes would visit a large part of the bank anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from math import comb

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
Ints = npt.NDArray[np.intp]

CHUNK_BITS = 16
_BUCKETS = 1 << CHUNK_BITS
# Below this many hashes brute force is already ~0.1 ms and the tables would cost more than they save.
MIN_MULTI_INDEX = 4096


def hex_to_words(hexes: Sequence[str], bits: int) -> U64:
    """``(words, n)`` native uint64, word-major. The byte order only has to agree with the query's."""
    width = bits // 64
    if not hexes:
        return np.zeros((width, 0), dtype=np.uint64)
    raw = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8").reshape(len(hexes), width)
    return np.ascontiguousarray(raw.T.astype(np.uint64))


@cache
def _masks(radius: int) -> npt.NDArray[np.int64]:
    """Every 16-bit value with at most ``radius`` bits set (XORed with a chunk: its neighbours)."""
    values = np.arange(_BUCKETS, dtype=np.int64)
    return values[np.bitwise_count(values) <= radius]


_SHIFTS = (48, 32, 16, 0)  # chunk k is bits [shift, shift + 16) of word k // 4


def _chunk(words: U64, k: int) -> npt.NDArray[np.uint16]:
    word: U64 = words[k // 4]
    shifted: U64 = (word >> np.uint64(_SHIFTS[k % 4])) & np.uint64(0xFFFF)
    return shifted.astype(np.uint16)


def _query_chunks(query: U64) -> list[int]:
    return [(int(word) >> shift) & 0xFFFF for word in query.tolist() for shift in _SHIFTS]


class _Tables:
    """Per chunk position j: the row ids sorted by their chunk value, flattened over all positions into
    ``rows``, and ``starts[j, v]``, where the rows with value v at position j begin in ``rows``."""

    def __init__(self, words: U64) -> None:
        count, n = words.shape[0] * 4, words.shape[1]
        self.rows = np.empty(count * n, dtype=np.uint32)
        self.starts = np.empty((count, _BUCKETS + 1), dtype=np.int64)
        for j in range(count):
            values = _chunk(words, j)  # one chunk at a time: no (chunks × n) temporary
            self.rows[j * n : (j + 1) * n] = np.argsort(values, kind="stable")  # radix sort for uint16
            self.starts[j, 0] = j * n
            np.cumsum(np.bincount(values, minlength=_BUCKETS), out=self.starts[j, 1:])
            self.starts[j, 1:] += j * n
        self._positions = np.arange(count)[:, None]

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.starts.nbytes)

    def candidates(self, query_chunks: list[int], radius: int, limit: int) -> npt.NDArray[np.uint32] | None:
        """Rows sharing, at some chunk position, a value within ``radius`` bits of the query's chunk.

        All positions at once (a few numpy calls, not a loop over 16 × 17 buckets). A row close in
        several chunks appears several times: deduplicating the few survivors of the distance filter is
        cheaper than deduplicating thousands of candidates. None when there would be more than ``limit``
        (a bank of near-identical hashes): a linear scan is then the faster exact answer."""
        probes = _masks(radius)[None, :] ^ np.array(query_chunks, dtype=np.int64)[:, None]
        lo = self.starts[self._positions, probes].ravel()
        counts = self.starts[self._positions, probes + 1].ravel() - lo
        total = int(counts.sum())
        if total > limit:
            return None
        # The concatenation of the ranges [lo, lo + count) without a Python loop over buckets.
        ends = np.cumsum(counts)
        offsets = np.repeat(lo - (ends - counts), counts) + np.arange(total)
        return self.rows[offsets]


class HammingIndex:
    def __init__(self, hexes: Sequence[str], bits: int) -> None:
        if bits % 64:
            raise ValueError("bits must be a multiple of 64")
        self.bits = bits
        self.words = hex_to_words(hexes, bits)
        self._chunk_count = bits // CHUNK_BITS
        self._tables: _Tables | None = None
        self._rows: U64 | None = None
        if len(self) >= MIN_MULTI_INDEX:
            self._tables = _Tables(self.words)
            # Row-major too: a candidate's whole hash is then one cache line, not one miss per word.
            self._rows = np.ascontiguousarray(self.words.T)

    def __len__(self) -> int:
        return int(self.words.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes held by the index (hashes plus multi-index tables)."""
        extra = 0
        if self._tables is not None and self._rows is not None:
            extra = self._tables.nbytes + int(self._rows.nbytes)
        return int(self.words.nbytes) + extra

    def uses_multi_index(self, max_distance: int) -> bool:
        """Whether a query at this threshold probes the chunk tables (else: brute force)."""
        if self._tables is None:
            return False
        radius = max_distance // self._chunk_count
        if radius >= CHUNK_BITS:
            return False
        probes = sum(comb(CHUNK_BITS, i) for i in range(radius + 1)) * self._chunk_count
        # Expected candidates for evenly spread hashes; past ~1/32 of the bank a linear scan wins.
        return probes * len(self) / _BUCKETS < len(self) / 32

    def search(self, query_hex: str, max_distance: int) -> tuple[Ints, npt.NDArray[np.uint16]]:
        """Indices (ascending) of every stored hash within ``max_distance`` bits, and their distances."""
        query = hex_to_words([query_hex], self.bits)[:, 0]
        if self._tables is not None and self._rows is not None and self.uses_multi_index(max_distance):
            radius = max_distance // self._chunk_count
            found = self._tables.candidates(_query_chunks(query), radius, len(self) // 8)
            if found is None:
                return self._brute_force(query, max_distance)
            rows = found.astype(np.intp)
            dist = np.bitwise_count(self._rows[rows] ^ query).sum(axis=1, dtype=np.uint16)
            keep = np.flatnonzero(dist <= max_distance)
            rows, dist = rows[keep], dist[keep]
            order = np.argsort(rows, kind="stable")
            rows, dist = rows[order], dist[order]
            first = np.ones(rows.size, dtype=bool)
            first[1:] = rows[1:] != rows[:-1]
            return rows[first], dist[first]
        return self._brute_force(query, max_distance)

    def _brute_force(self, query: U64, max_distance: int) -> tuple[Ints, npt.NDArray[np.uint16]]:
        # For wide hashes the first half of the words prunes: the distance over half the bits is a lower
        # bound of the full distance, and at a selective threshold almost nothing survives it.
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
