"""HammingIndex agrees with a plain popcount over every stored hash, at every threshold."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from gate.matching.pdq_index import MIN_MULTI_INDEX, WIDE_CHUNKS, WIDE_FROM, HammingIndex, default_chunks


def near(rng: random.Random, base: int, bits: int, flips: int) -> int:
    for pos in rng.sample(range(bits), flips):
        base ^= 1 << pos
    return base


@pytest.mark.parametrize("bits", [64, 256])
@pytest.mark.parametrize("threshold", [0, 8, 31, 70, 129, 256])
def test_search_matches_brute_force(bits: int, threshold: int) -> None:
    rng = random.Random(bits * 1000 + threshold)
    query = rng.getrandbits(bits)
    # a mix of random hashes and hashes at every distance from the query, so each threshold has hits
    values = [rng.getrandbits(bits) for _ in range(2000)]
    values += [near(rng, query, bits, d) for d in range(0, bits + 1, max(1, bits // 64))]
    rng.shuffle(values)
    width = bits // 4
    index = HammingIndex([f"{v:0{width}x}" for v in values], bits)
    idx, dist = index.search(f"{query:0{width}x}", threshold)
    got = dict(zip(idx.tolist(), dist.tolist(), strict=True))
    want = {i: (v ^ query).bit_count() for i, v in enumerate(values) if (v ^ query).bit_count() <= threshold}
    assert got == want
    assert want  # the table is not vacuous


def test_empty_index() -> None:
    index = HammingIndex([], 256)
    idx, dist = index.search("0" * 64, 31)
    assert len(index) == 0 and idx.size == 0 and dist.size == 0


# --- the multi-index (banks of MIN_MULTI_INDEX hashes and more) answers exactly what brute force does ---


def _brute(rows: np.ndarray, query: np.ndarray, threshold: int) -> dict[int, int]:
    """An independent answer: full popcount over every stored hash, row by row."""
    dist = np.bitwise_count(rows ^ query).sum(axis=1)
    return {int(i): int(dist[i]) for i in np.flatnonzero(dist <= threshold)}


def _bank(rng: np.random.Generator, bits: int, n: int, query: np.ndarray) -> np.ndarray:
    """Random hashes, plus near copies of the query at every distance (bits flipped anywhere, or all
    in one chunk: the pigeonhole edge), plus duplicates."""
    nbytes = bits // 8
    rows = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    planted = []
    for d in range(bits + 1):
        for spread in (True, False):
            row = query.copy()
            positions = rng.choice(bits, d, replace=False) if spread else np.arange(d)
            for p in positions:
                row[p // 8] ^= np.uint8(1 << (p % 8))
            planted.append(row)
    planted += [query.copy() for _ in range(5)]
    out = np.concatenate([rows, np.array(planted)])
    rng.shuffle(out)
    return out


@pytest.mark.parametrize(("bits", "chunks"), [(64, None), (256, None), (256, WIDE_CHUNKS)])
def test_multi_index_matches_brute_force(bits: int, chunks: int | None) -> None:
    rng = np.random.default_rng(bits)
    query = rng.integers(0, 256, size=bits // 8, dtype=np.uint8)
    rows = _bank(rng, bits, 3 * MIN_MULTI_INDEX, query)
    # Wide chunks are what banks of WIDE_FROM hashes and more get: here forced on a small one.
    index = HammingIndex([r.tobytes().hex() for r in rows], bits, chunks=chunks)
    thresholds = range(0, bits + 1) if bits == 64 else [*range(0, 64), 70, 100, 128, 256]
    used = set()
    for threshold in thresholds:
        used.add(index.uses_multi_index(threshold))
        idx, dist = index.search(query.tobytes().hex(), threshold)
        assert idx.tolist() == sorted(idx.tolist())
        assert dict(zip(idx.tolist(), dist.tolist(), strict=True)) == _brute(rows, query, threshold), (
            threshold
        )
    assert used == {True, False}  # both methods were exercised
    assert index.uses_multi_index(31 if bits == 256 else 7)
    assert index.chunks == (chunks or bits // 16)


def test_multi_index_many_queries_at_pdq_threshold() -> None:
    rng = np.random.default_rng(7)
    rows = rng.integers(0, 256, size=(20_000, 32), dtype=np.uint8)
    # clusters: many hashes sharing most chunks, so candidates repeat across chunk tables
    base = rows[:50]
    for k in range(50):
        clone = np.repeat(base[k : k + 1], 40, axis=0)
        flips = rng.integers(0, 256, size=clone.shape, dtype=np.uint8) & (
            rng.random(clone.shape) < 0.08
        ).astype(np.uint8)
        rows = np.concatenate([rows, clone ^ flips])
    index = HammingIndex([r.tobytes().hex() for r in rows], 256)
    for q in rows[rng.choice(len(rows), 60, replace=False)]:
        idx, dist = index.search(q.tobytes().hex(), 31)
        assert dict(zip(idx.tolist(), dist.tolist(), strict=True)) == _brute(rows, q, 31)


def test_skewed_bank_falls_back_and_stays_exact() -> None:
    # Half the bank is one hash: every probe hits its buckets; the answer must still be exact.
    rng = np.random.default_rng(3)
    same = np.zeros((MIN_MULTI_INDEX, 32), dtype=np.uint8)
    rows = np.concatenate([same, rng.integers(0, 256, size=(MIN_MULTI_INDEX, 32), dtype=np.uint8)])
    index = HammingIndex([r.tobytes().hex() for r in rows], 256)
    for threshold in (0, 31, 40):
        idx, dist = index.search("0" * 64, threshold)
        assert dict(zip(idx.tolist(), dist.tolist(), strict=True)) == _brute(rows, same[0], threshold)
        assert len(idx) >= MIN_MULTI_INDEX


def test_memory_is_reported() -> None:
    small = HammingIndex(["0" * 64] * 10, 256)
    big = HammingIndex(["0" * 64] * MIN_MULTI_INDEX, 256)
    assert small.nbytes == 10 * 32
    # the hashes + one uint32 row id per chunk + bucket offsets
    assert big.nbytes == MIN_MULTI_INDEX * (32 + 16 * 4) + 16 * 4 * (2**16 + 1)


def test_ncmec_scale_banks_get_wide_chunks() -> None:
    assert default_chunks(256, WIDE_FROM - 1) == 16
    assert default_chunks(256, WIDE_FROM) == WIDE_CHUNKS
    assert default_chunks(64, 10 * WIDE_FROM) == 4  # pHash / dHash keep 16-bit chunks


@pytest.mark.parametrize("chunks", [None, WIDE_CHUNKS])
def test_a_saved_index_maps_back_and_answers_the_same(tmp_path: Path, chunks: int | None) -> None:
    rng = np.random.default_rng(11)
    query = rng.integers(0, 256, size=32, dtype=np.uint8)
    rows = _bank(rng, 256, 2 * MIN_MULTI_INDEX, query)
    built = HammingIndex([r.tobytes().hex() for r in rows], 256, chunks=chunks)
    built.save(tmp_path / "index")
    loaded = HammingIndex.load(tmp_path / "index")
    assert (len(loaded), loaded.chunks, loaded.nbytes) == (len(built), built.chunks, built.nbytes)
    for threshold in (0, 31, 70):
        want = built.search(query.tobytes().hex(), threshold)
        got = loaded.search(query.tobytes().hex(), threshold)
        assert [a.tolist() for a in got] == [a.tolist() for a in want]
    assert loaded.search(query.tobytes().hex(), 31)[0].tolist() == sorted(_brute(rows, query, 31))


def test_an_incomplete_saved_index_is_refused(tmp_path: Path) -> None:
    rows = np.random.default_rng(12).integers(0, 256, size=(MIN_MULTI_INDEX, 32), dtype=np.uint8)
    HammingIndex([r.tobytes().hex() for r in rows], 256).save(tmp_path / "index")
    (tmp_path / "index" / "starts_3.npy").unlink()
    with pytest.raises(ValueError, match="no usable index"):
        HammingIndex.load(tmp_path / "index")
    np.save(tmp_path / "index" / "starts_3.npy", np.zeros(10, dtype=np.uint32))
    with pytest.raises(ValueError, match="do not fit"):
        HammingIndex.load(tmp_path / "index")
