"""An exact Hamming index over fixed-width hashes (PDQ 256 bits, phash/dhash 64 bits).

Two exact methods, one answer (tests/unit/matching/test_pdq_index.py checks both against a plain popcount):

- **Multi-index hashing** (Norouzi et al.): every hash is cut into ``m`` chunks, and each chunk position
  has a table from chunk value to the rows holding it. If two hashes are within ``t`` bits, by
  pigeonhole one of the ``m`` chunks differs in at most ``t // m`` bits. So probing, in every table, the
  query's chunk and its values within ``t // m`` bits yields a superset of the answer, which the full
  distance then filters. The chunk width is chosen by the bank's size:

  * up to ``WIDE_FROM`` hashes, 16 chunks of 16 bits (PDQ at 31: 16 × 17 probes, ~4k candidates at 1M
    hashes); bucket offsets cost 256 KB per chunk;
  * from ``WIDE_FROM`` on (NCMEC-scale banks), PDQ gets 12 chunks of 21–22 bits: at 31 bits a chunk
    within 2 bits, ~3k probes but ~4× fewer candidates than 16-bit chunks at 10M hashes (measured:
    ``python -m bench --only matching``), for 128 MB of bucket offsets — the candidates' random reads
    into the bank are what a query costs at that size.

  Memory: the hashes once, row-major (a candidate's hash is one cache line), one uint32 row id per hash
  per chunk, and the bucket offsets (uint32).
- **Brute force** over the rows, in blocks (bounded temporaries): used when the index is small, or the
  threshold so wide that the chunk probes would visit a large part of the bank anyway.

The arrays can be written to and mapped back from a directory (``save`` / ``load``), so a large bank is
indexed once per content, not at every start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
Ints = npt.NDArray[np.intp]
Layout = tuple[tuple[int, int], ...]  # (first bit, width) of every chunk, in order

CHUNK_BITS = 16
WIDE_CHUNKS = 12  # for 256-bit hashes in large banks: 4 × 22 + 8 × 21 bits
WIDE_FROM = 4_000_000  # from here 128 MB of offsets cost ≤ 32 B a hash, and the queries need them
# Below this many hashes brute force is already ~0.1 ms and the tables would cost more than they save.
MIN_MULTI_INDEX = 4096
BLOCK = 1 << 16  # rows per brute-force block: 2 MB of temporaries for PDQ
FORMAT = 2  # of the saved arrays


def hex_to_rows(hexes: Sequence[str], bits: int) -> U64:
    """``(n, bits // 64)`` native uint64, row-major; bit 0 of the hash is the top bit of word 0."""
    width = bits // 64
    if not hexes:
        return np.zeros((0, width), dtype=np.uint64)
    raw = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8").reshape(len(hexes), width)
    return raw.astype(np.uint64)


def layout(bits: int, chunks: int) -> Layout:
    """``chunks`` chunks as equal as can be, the wider ones first."""
    out, start = [], 0
    for i in range(chunks):
        width = bits // chunks + (1 if i < bits % chunks else 0)
        out.append((start, width))
        start += width
    return tuple(out)


def default_chunks(bits: int, n: int) -> int:
    return WIDE_CHUNKS if bits == 256 and n >= WIDE_FROM else bits // CHUNK_BITS


@cache
def neighbour_masks(width: int, radius: int) -> npt.NDArray[np.int64]:
    """Every ``width``-bit value with at most ``radius`` bits set (XORed with a chunk: its neighbours)."""
    values = [0]
    for k in range(1, radius + 1):
        values.extend(sum(1 << b for b in bits) for bits in combinations(range(width), k))
    return np.array(values, dtype=np.int64)


def _probes(width: int, radius: int) -> int:
    return sum(comb(width, i) for i in range(radius + 1))


def _chunk_values(rows: U64, start: int, width: int) -> U32:
    # In place where it can be: at 10M hashes every temporary is 80 MB, on each indexing thread.
    word, offset = divmod(start, 64)
    if offset + width <= 64:
        values: U64 = rows[:, word] >> np.uint64(64 - offset - width)
    else:  # the chunk straddles two words
        low = width - (64 - offset)
        values = rows[:, word] << np.uint64(low)
        values |= rows[:, word + 1] >> np.uint64(64 - low)
    values &= np.uint64((1 << width) - 1)
    return values.astype(np.uint32)


def radix_order(values: U32, width: int) -> U32:
    """Row ids sorted by chunk value: numpy's radix sort, 16 bits a pass (least significant first).

    The sorts return int64; each is narrowed at once (the temporaries of a 10M-row bank are 80 MB)."""
    order = np.argsort(values.astype(np.uint16), kind="stable").astype(np.uint32)
    if width > 16:
        high = values[order]
        high >>= np.uint32(16)
        order = order[np.argsort(high.astype(np.uint16), kind="stable")]
    return order


class _Tables:
    """Per chunk j: the row ids sorted by their chunk value (``rows[j * n : (j + 1) * n]``), and
    ``starts[j][v]``, where the rows with value v begin within that slice."""

    def __init__(self, chunks: Layout, rows: U32, starts: list[U32], n: int) -> None:
        self.layout = chunks
        self.rows = rows
        self.starts = starts
        self.n = n

    @classmethod
    def build(cls, hashes: U64, chunks: Layout) -> _Tables:
        n = hashes.shape[0]
        rows = np.empty(len(chunks) * n, dtype=np.uint32)

        def one(j: int) -> U32:
            start, width = chunks[j]
            values = _chunk_values(hashes, start, width)  # one chunk at a time: no (chunks × n) temporary
            rows[j * n : (j + 1) * n] = radix_order(values, width)
            offsets = np.zeros((1 << width) + 1, dtype=np.uint32)
            offsets[1:] = np.cumsum(np.bincount(values, minlength=1 << width))
            return offsets

        # numpy sorts without the GIL: the chunks of a large bank are indexed on every core.
        threads = min(len(chunks), os.cpu_count() or 1) if n >= WIDE_FROM // 4 else 1
        with ThreadPoolExecutor(threads, thread_name_prefix="gate-index") as pool:
            starts = list(pool.map(one, range(len(chunks))))
        return cls(chunks, rows, starts, n)

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + sum(s.nbytes for s in self.starts))

    def candidates(self, query: int, bits: int, radius: int, limit: int) -> U32 | None:
        """Rows sharing, at some chunk position, a value within ``radius`` bits of the query's chunk.

        A row close in several chunks appears several times: deduplicating the few survivors of the
        distance filter is cheaper than deduplicating thousands of candidates. None when there would be
        more than ``limit`` (a bank of near-identical hashes): a linear scan is then the faster answer."""
        lows, counts = [], []
        for j, (start, width) in enumerate(self.layout):
            probes = neighbour_masks(width, radius) ^ ((query >> (bits - start - width)) & ((1 << width) - 1))
            low = self.starts[j][probes].astype(np.int64)
            counts.append(self.starts[j][probes + 1].astype(np.int64) - low)
            lows.append(low + j * self.n)
        low, count = np.concatenate(lows), np.concatenate(counts)
        total = int(count.sum())
        if total > limit:
            return None
        # The concatenation of the ranges [low, low + count) without a Python loop over buckets.
        ends = np.cumsum(count)
        offsets = np.repeat(low - (ends - count), count) + np.arange(total)
        return self.rows[offsets]


class HammingIndex:
    def __init__(self, hexes: Sequence[str], bits: int, *, chunks: int | None = None) -> None:
        if bits % 64:
            raise ValueError("bits must be a multiple of 64")
        self._init(hex_to_rows(hexes, bits), bits, chunks)

    @classmethod
    def from_rows(cls, rows: U64, bits: int, *, chunks: int | None = None) -> HammingIndex:
        """An index over ``(n, bits // 64)`` uint64 rows (as ``hex_to_rows`` makes them)."""
        index = cls.__new__(cls)
        index._init(np.ascontiguousarray(rows, dtype=np.uint64), bits, chunks)
        return index

    def _init(self, rows: U64, bits: int, chunks: int | None) -> None:
        self.bits = bits
        self.rows = rows
        self._tables: _Tables | None = None
        if len(self) >= MIN_MULTI_INDEX:
            count = chunks if chunks is not None else default_chunks(bits, len(self))
            self._tables = _Tables.build(rows, layout(bits, count))

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def chunks(self) -> int | None:
        """Chunks of the multi-index (None: brute force only)."""
        return len(self._tables.layout) if self._tables is not None else None

    @property
    def nbytes(self) -> int:
        """Bytes held by the index (hashes plus multi-index tables)."""
        return int(self.rows.nbytes) + (self._tables.nbytes if self._tables is not None else 0)

    def uses_multi_index(self, max_distance: int) -> bool:
        """Whether a query at this threshold probes the chunk tables (else: brute force)."""
        tables = self._tables
        if tables is None:
            return False
        radius = max_distance // len(tables.layout)
        if radius >= min(width for _, width in tables.layout):
            return False
        expected = sum(_probes(w, radius) * len(self) / (1 << w) for _, w in tables.layout)
        # Expected candidates for evenly spread hashes; past ~1/32 of the bank a linear scan wins.
        return expected < len(self) / 32

    def search(self, query_hex: str, max_distance: int) -> tuple[Ints, npt.NDArray[np.uint16]]:
        """Indices (ascending) of every stored hash within ``max_distance`` bits, and their distances."""
        query = np.frombuffer(bytes.fromhex(query_hex), dtype=">u8").astype(np.uint64)
        tables = self._tables
        if tables is not None and self.uses_multi_index(max_distance):
            radius = max_distance // len(tables.layout)
            found = tables.candidates(int(query_hex, 16), self.bits, radius, len(self) // 8)
            if found is not None:
                rows = found.astype(np.intp)
                dist = np.bitwise_count(self.rows[rows] ^ query).sum(axis=1, dtype=np.uint16)
                keep = np.flatnonzero(dist <= max_distance)
                rows, dist = rows[keep], dist[keep]
                order = np.argsort(rows, kind="stable")
                rows, dist = rows[order], dist[order]
                first = np.ones(rows.size, dtype=bool)
                first[1:] = rows[1:] != rows[:-1]
                return rows[first], dist[first]
        return self._brute_force(query, max_distance)

    def _brute_force(self, query: U64, max_distance: int) -> tuple[Ints, npt.NDArray[np.uint16]]:
        found: list[Ints] = []
        dists: list[npt.NDArray[np.uint16]] = []
        for start in range(0, len(self), BLOCK):
            dist = np.bitwise_count(self.rows[start : start + BLOCK] ^ query).sum(axis=1, dtype=np.uint16)
            idx = np.flatnonzero(dist <= max_distance)
            found.append(idx + start)
            dists.append(dist[idx])
        if not found:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.uint16)
        return np.concatenate(found), np.concatenate(dists)

    # ---- the arrays on disk ------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the arrays (``.npy``, mappable) and what they are into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "rows.npy", self.rows)
        meta: dict[str, object] = {"format": FORMAT, "bits": self.bits, "layout": None}
        if self._tables is not None:
            meta["layout"] = self._tables.layout
            np.save(directory / "table_rows.npy", self._tables.rows)
            for j, starts in enumerate(self._tables.starts):
                np.save(directory / f"starts_{j}.npy", starts)
        (directory / "index.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> HammingIndex:
        """The index ``save`` wrote, its arrays mapped read-only (pages are read as queries touch them,
        and shared with any other process mapping the same files). Raises ``ValueError`` when the
        directory does not hold a complete index of this format."""
        try:
            meta = json.loads((directory / "index.json").read_text())
            if meta.get("format") != FORMAT:
                raise ValueError(f"index format {meta.get('format')!r}, expected {FORMAT}")
            index = cls.__new__(cls)
            index.bits = int(meta["bits"])
            index.rows = np.load(directory / "rows.npy", mmap_mode="r")
            index._tables = None
            if meta["layout"] is not None:
                chunks: Layout = tuple((int(s), int(w)) for s, w in meta["layout"])
                starts = [np.load(directory / f"starts_{j}.npy", mmap_mode="r") for j in range(len(chunks))]
                table_rows = np.load(directory / "table_rows.npy", mmap_mode="r")
                index._tables = _Tables(chunks, table_rows, starts, len(index))
                sizes = [s.shape == ((1 << w) + 1,) for s, (_, w) in zip(starts, chunks, strict=True)]
                if table_rows.shape != (len(chunks) * len(index),) or not all(sizes):
                    raise ValueError("the tables do not fit the hashes")
            if index.rows.ndim != 2 or index.rows.shape[1] != index.bits // 64:
                raise ValueError("the hashes are not of the index's width")
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"no usable index in {directory}: {exc}") from exc
        return index
