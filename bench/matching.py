"""Local-bank matching at 10k / 100k / 1M PDQ hashes: the gate's index against numpy brute force.

Baseline (same run, same data): a row-major XOR + popcount + sum over every stored hash — the plain
numpy answer. Hashes are random 256-bit values (every PDQ bit is a median threshold, so each is set
about half the time); each query is a stored hash with 0–31 bits flipped, so every query has a match.
Exact types are dict lookups: O(1), shown by the SHA-256 row at each size.
"""

from __future__ import annotations

import time

import numpy as np

from bench.report import Report
from gate.matching.pdq_index import HammingIndex

THRESHOLD = 31


def _ms_per_call(fn: object, calls: int) -> float:
    assert callable(fn)
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1000


def run(report: Report, sizes: list[int], queries: int) -> dict[str, float]:
    table = report.table(
        f"Local matching, PDQ at threshold {THRESHOLD} (one query, one core)",
        [
            "hashes",
            "gate index ms",
            "numpy brute force ms",
            "speed-up",
            "index MB",
            "hashes alone MB",
            "build s",
            "SHA-256 lookup µs",
        ],
        note="Gate index: multi-index hashing (16 × 16-bit chunks) with an exact distance check; "
        "brute force when that is faster. Same answers as brute force (tests/unit/matching/test_pdq_index.py).",
    )
    rng = np.random.default_rng(6)
    out: dict[str, float] = {}
    for n in sizes:
        row = _one_size(rng, n, queries)
        table.add(**row)
        out[f"pdq_ms_{n}"] = row["gate index ms"]
    if 1_000_000 in sizes:
        ms = out["pdq_ms_1000000"]
        report.target("PDQ query at 1M hashes", "≤ 1 ms", f"{ms:.2f} ms", ms <= 1.0)
    return out


def _one_size(rng: np.random.Generator, n: int, queries: int) -> dict[str, object]:
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    hexes = [row.tobytes().hex() for row in raw]
    start = time.perf_counter()
    index = HammingIndex(hexes, 256)
    build = time.perf_counter() - start
    rows = np.ascontiguousarray(raw.view(">u8").astype(np.uint64))
    picks = rng.choice(n, queries, replace=False)
    qs = []
    for i in picks:
        q = raw[i].copy()
        for p in rng.choice(256, int(rng.integers(0, THRESHOLD + 1)), replace=False):
            q[p // 8] ^= np.uint8(1 << (p % 8))
        qs.append(q)
    q_hex = [q.tobytes().hex() for q in qs]
    q_words = [q.view(">u8").astype(np.uint64) for q in qs]

    k = [0]

    def ours() -> None:
        index.search(q_hex[k[0] % queries], THRESHOLD)
        k[0] += 1

    def brute() -> None:
        q = q_words[k[0] % queries]
        np.flatnonzero(np.bitwise_count(rows ^ q).sum(axis=1, dtype=np.uint16) <= THRESHOLD)
        k[0] += 1

    ours_ms = _ms_per_call(ours, queries * 3)
    brute_ms = _ms_per_call(brute, max(3, queries // 4))
    exact = {h: i for i, h in enumerate(hexes)}  # stands in for the SHA-256 dict: same shape
    lookup_us = _ms_per_call(lambda: exact.get(hexes[n // 2]), 10_000) * 1000
    return {
        "hashes": f"{n:,}",
        "gate index ms": ours_ms,
        "numpy brute force ms": brute_ms,
        "speed-up": f"{brute_ms / ours_ms:.1f}×",
        "index MB": index.nbytes / 2**20,
        "hashes alone MB": n * 32 / 2**20,
        "build s": build,
        "SHA-256 lookup µs": lookup_us,
    }
