"""HammingIndex agrees with a plain popcount over every stored hash, at every threshold."""

from __future__ import annotations

import random

import pytest

from gate.matching.pdq_index import HammingIndex


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
