"""The retro-hunt's PDQ join finds exactly the pairs a brute-force comparison finds."""

from __future__ import annotations

import numpy as np
import pytest

from gate.scan.pdq_join import NewHashes


def _near(rng: np.random.Generator, words: np.ndarray, bits: int) -> np.ndarray:
    """``words`` (4 words of 64 bits) with ``bits`` distinct bits flipped."""
    out = words.copy()
    for b in rng.choice(256, size=bits, replace=False):
        out[b // 64] ^= np.uint64(1 << int(b % 64))
    return out


@pytest.mark.parametrize("max_distance", [0, 15, 31, 40])
def test_the_join_finds_every_pair_within_the_distance_and_no_other(max_distance: int) -> None:
    rng = np.random.default_rng(max_distance)
    new = rng.integers(0, 2**63, size=(4, 20), dtype=np.uint64)
    # Stored hashes near some new ones (at distances around the threshold) among random ones.
    near = [_near(rng, new[:, j % 20], d) for j, d in enumerate([0, 1, 15, 16, 30, 31, 32, 39, 40, 41])]
    stored = np.concatenate(
        [np.stack(near, axis=1), rng.integers(0, 2**63, size=(4, 200), dtype=np.uint64)], 1
    )

    got_new, got_stored, got_dist = NewHashes(new).join(stored, max_distance)

    dist = sum(np.bitwise_count(new[w][:, None] ^ stored[w][None, :]).astype(np.int64) for w in range(4))
    want = {(int(i), int(j), int(dist[i, j])) for i, j in zip(*np.nonzero(dist <= max_distance), strict=True)}
    assert want  # the planted pair at distance 0 at least
    assert set(zip(got_new.tolist(), got_stored.tolist(), got_dist.tolist(), strict=True)) == want
    assert len(got_new) == len(want)  # each pair once
