"""``ExactIndex``: digests of one exact type (MD5, SHA-1, SHA-256) found in O(1), for banks of tens of
millions of rows.

A dict of hex strings costs ~200 bytes a row (50M NCMEC MD5s: ~10 GB). Here the digests sit side by
side as bytes, grouped by their first ``bucket_bits`` bits — uniform, as cryptographic digests are — with
one uint32 offset per bucket; a lookup reads its bucket's offsets and compares the few digests in it
(about 3 at 50M rows). Rows that repeat a digest (the same hash in two banks) are all reported.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from gate.matching.pdq_index import radix_order

MAX_BUCKET_BITS = 24  # 64 MB of offsets: ~3 digests a bucket at 50M rows


def bucket_bits(n: int) -> int:
    return max(8, min(MAX_BUCKET_BITS, math.ceil(math.log2(max(n, 1)))))


class ExactIndex:
    def __init__(
        self, digests: npt.NDArray[np.uint8], starts: npt.NDArray[np.uint32], order: npt.NDArray[np.uint32]
    ) -> None:
        self.digests = digests  # (n, width), grouped by bucket
        self.starts = starts  # where each bucket begins in ``digests``; one more entry at the end
        self.order = order  # the row (in bank order) of each digest
        self.bits = int(starts.size - 1).bit_length() - 1
        self._keys = digests.view(f"S{digests.shape[1]}").ravel() if digests.size else digests

    @classmethod
    def build(cls, digests: npt.NDArray[np.uint8]) -> ExactIndex:
        """Over ``(n, width)`` digests in bank order."""
        n, bits = digests.shape[0], bucket_bits(digests.shape[0])
        buckets = _bucket(digests, bits)
        order = radix_order(buckets, bits)
        starts = np.zeros((1 << bits) + 1, dtype=np.uint32)
        starts[1:] = np.cumsum(np.bincount(buckets, minlength=1 << bits))
        return cls(np.ascontiguousarray(digests[order]) if n else digests, starts, order)

    def __len__(self) -> int:
        return int(self.digests.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.digests.nbytes + self.starts.nbytes + self.order.nbytes)

    def rows(self, value: str) -> list[int]:
        """The bank rows holding the digest ``value`` (lowercase hex), in bank order."""
        if not len(self):
            return []
        key = bytes.fromhex(value)
        bucket = int.from_bytes(key[:3], "big") >> (24 - self.bits)
        lo, hi = int(self.starts[bucket]), int(self.starts[bucket + 1])
        hits = np.flatnonzero(self._keys[lo:hi] == key)
        return sorted(int(self.order[lo + i]) for i in hits)


def _bucket(digests: npt.NDArray[np.uint8], bits: int) -> npt.NDArray[np.uint32]:
    top = digests[:, :3].astype(np.uint32)
    value = (top[:, 0] << np.uint32(16)) | (top[:, 1] << np.uint32(8)) | top[:, 2]
    return (value >> np.uint32(24 - bits)).astype(np.uint32)
