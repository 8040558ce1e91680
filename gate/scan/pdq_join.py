"""Every pair (new bank hash, stored hash) within ``max_distance`` bits: the PDQ side of a retro-hunt.

Multi-index hashing as a join (``gate.matching.pdq_index`` explains the pigeonhole): cut into sixteen
16-bit chunks, two hashes within ``t`` bits agree to within ``t // 16`` bits on some chunk. Stored hashes
arrive in large blocks; for each chunk position the block is sorted by that chunk (a radix sort), and
every new bank hash probes the buckets within ``t // 16`` bits of its own chunk: each probe's candidates
are one contiguous run of the sorted block. Candidates are checked on another word first (at 31 bits,
fewer than half survive one 64-bit word), then on the rest. All vectorised (no Python loop per hash),
memory bounded by the block and ``MAX_CANDIDATES``, never by the size of the log.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gate.matching.pdq_index import neighbour_masks

U64 = npt.NDArray[np.uint64]
Ints = npt.NDArray[np.int64]

CHUNKS = 16  # 16-bit chunks of a 256-bit hash
CHUNK_BITS = 16
_SHIFTS = (48, 32, 16, 0)
MAX_CANDIDATES = 1_000_000  # candidate pairs checked at once (~60 bytes each)


def _chunk(words: U64, k: int) -> Ints:
    word: U64 = words[k // 4]
    shifted: U64 = (word >> np.uint64(_SHIFTS[k % 4])) & np.uint64(0xFFFF)
    return shifted.astype(np.int64)


class NewHashes:
    """The new bank hashes, ``(4, m)`` word-major: the probing side of the join."""

    def __init__(self, words: U64) -> None:
        self.words = np.ascontiguousarray(words)
        self.size = int(words.shape[1])
        self._chunks = [_chunk(self.words, k) for k in range(CHUNKS)]

    def join(self, stored: U64, max_distance: int) -> tuple[Ints, Ints, Ints]:
        """(new index, stored index, distance) of every pair within ``max_distance``, each pair once."""
        empty = np.zeros(0, dtype=np.int64)
        if self.size == 0 or stored.shape[1] == 0:
            return empty, empty, empty
        masks = neighbour_masks(CHUNK_BITS, min(max_distance // CHUNKS, CHUNK_BITS))
        owners = np.repeat(np.arange(self.size, dtype=np.int64), masks.size)
        found: list[tuple[Ints, Ints, Ints]] = []
        for k in range(CHUNKS):
            values = _chunk(stored, k)
            order = np.argsort(values.astype(np.uint16), kind="stable")  # a radix sort for 16-bit keys
            starts = np.zeros(65537, dtype=np.int64)
            np.cumsum(np.bincount(values, minlength=65536), out=starts[1:])
            ordered = [stored[w][order] for w in range(4)]  # each probe's candidates: one contiguous run
            probes = (self._chunks[k][:, None] ^ masks[None, :]).ravel()
            lo = starts[probes]
            counts = starts[probes + 1] - lo
            hit = np.flatnonzero(counts)
            lo, counts, who = lo[hit], counts[hit], owners[hit]
            ends = np.cumsum(counts)
            begin = 0
            while begin < lo.size:  # blocks of probes whose candidates fit in MAX_CANDIDATES
                base = int(ends[begin - 1]) if begin else 0
                end = max(int(np.searchsorted(ends, base + MAX_CANDIDATES, side="right")), begin + 1)
                part = slice(begin, end)
                n_idx, pos, dist = self._check(ordered, lo[part], counts[part], who[part], k, max_distance)
                found.append((n_idx, order[pos], dist))
                begin = end
        if not found:
            return empty, empty, empty
        new_idx = np.concatenate([f[0] for f in found])
        stored_idx = np.concatenate([f[1] for f in found]).astype(np.int64)
        dist = np.concatenate([f[2] for f in found])
        # A pair close in several chunks was found at each of them: keep one.
        _, first = np.unique(new_idx * stored.shape[1] + stored_idx, return_index=True)
        return new_idx[first], stored_idx[first], dist[first]

    def _check(
        self, ordered: list[U64], lo: Ints, counts: Ints, who: Ints, k: int, max_distance: int
    ) -> tuple[Ints, Ints, Ints]:
        total = int(counts.sum())
        ends = np.cumsum(counts)
        pos = np.repeat(lo - (ends - counts), counts) + np.arange(total)
        new_idx = np.repeat(who, counts)
        # The word holding chunk k agrees on that chunk by construction: a different word filters first.
        words = [(k // 4 + 1 + i) % 4 for i in range(4)]
        dist = np.bitwise_count(ordered[words[0]][pos] ^ self.words[words[0]][new_idx]).astype(np.int64)
        for w in words[1:]:
            alive = np.flatnonzero(dist <= max_distance)
            pos, new_idx, dist = pos[alive], new_idx[alive], dist[alive]
            dist += np.bitwise_count(ordered[w][pos] ^ self.words[w][new_idx])
        alive = np.flatnonzero(dist <= max_distance)
        return new_idx[alive], pos[alive], dist[alive]
