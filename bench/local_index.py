"""Local PDQ index speed: one threshold-31 query over 1M hashes, against a naive numpy baseline.

Run: python -m bench.local_index [N]. Prints milliseconds per query and the ratio to the baseline (a
row-major XOR + popcount + sum over every hash, measured in the same run), plus the cost of a dihedral
(8-hash) lookup through ``LocalBanks.match``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gate.matching.local import LocalBanks
from gate.matching.pdq_index import HammingIndex, hex_to_rows
from gate.policy.load import parse_policy
from gate.policy.plan import compile_plan
from gate.types import Hashes, PdqHash

POLICY = b"""
on_unhashable = "reject"
on_unscannable = "forward"
on_matcher_error = "quarantine"
on_log_failure = "forward"
[[rules]]
name = "near"
source = "local"
signal_types = ["pdq"]
max_distance = 31
action = "reject"
"""


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    hexes = [row.tobytes().hex() for row in raw]
    query = hexes[n // 2]
    start = time.perf_counter()
    index = HammingIndex(hexes, 256)
    build = time.perf_counter() - start
    rows = index.rows
    q = hex_to_rows([query], 256)[0]

    def naive() -> object:
        return np.flatnonzero(np.bitwise_count(rows ^ q).sum(axis=1, dtype=np.uint16) <= 31)

    def ours() -> object:
        return index.search(query, 31)

    base_ms = timed(naive, 5)
    ours_ms = timed(ours, 20)
    idx, dist = index.search(query, 31)
    assert n // 2 in idx.tolist() and int(dist[idx.tolist().index(n // 2)]) == 0
    print(f"index of {n:,} PDQ hashes built in {build:.2f}s")
    print(f"baseline (row-major, full popcount): {base_ms:7.2f} ms/query")
    print(f"HammingIndex.search, threshold 31:   {ours_ms:7.2f} ms/query  ({base_ms / ours_ms:.1f}x faster)")

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "big.csv").write_text("".join(f"pdq,{h}\n" for h in hexes))
        banks = LocalBanks(tmp)
        start = time.perf_counter()
        banks.load()
        print(f"LocalBanks.load of a {n:,}-row CSV:   {time.perf_counter() - start:7.2f} s")
        plan = compile_plan(parse_policy(POLICY, source="bench"))
        dihedral = tuple(PdqHash(hexes[i], 100) for i in range(8))
        upload = Hashes("0" * 64, "0" * 32, "0" * 40, "b", 1, "image/png", pdq=dihedral)

        async def eight() -> None:
            await banks.match(upload, plan)

        loop = asyncio.new_event_loop()
        ms = timed(lambda: loop.run_until_complete(eight()), 5)
        loop.close()
        print(f"LocalBanks.match, 8 dihedral hashes: {ms:7.2f} ms/upload ({ms / ours_ms:.1f}x one query)")


if __name__ == "__main__":
    main()
