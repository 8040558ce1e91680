"""How long does a retro-hunt take, and how much memory: N stored decisions against M new bank hashes.

Run: python -m bench.retro [N_DECISIONS] [M_NEW] [--json] (defaults 10 000 000 and 100 000), or as the
``retro`` section of ``python -m bench`` (``--quick``: 200 000 × 10 000), which runs it in a process of its
own so the peak RSS reported is the hunt's and not the rest of the suite's.

1. An embedded Postgres gets N forwarded decisions, generated inside Postgres (``INSERT … SELECT`` from
   ``generate_series``, indexes built after the load, as ``COPY`` would) — each with a DID, a CID, a
   SHA-256 and one PDQ hash.
2. M random new bank PDQ hashes (plus 100 planted 1–20 bits from stored ones, so the answer is known)
   and M SHA-256 values (100 of them stored ones) are matched by ``RetroHunt.find`` at 31 bits, the
   gate's code as shipped: stored PDQ hashes streamed out with one binary COPY and joined block by block
   (``gate.scan.pdq_join``), exact hashes looked up in the index. The Python process is pinned to one
   core (Postgres runs in its own process). Printed: the time, the hits, the peak RSS of this process.
3. The baseline, in the same run: the gate's own per-query index (``HammingIndex`` over the new
   hashes, one ``search`` per stored hash, as matching an upload does) on a sample of the stored
   hashes, extrapolated to N; printed as a ratio.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.report import Report
from gate.matching.bank_columns import Entry
from gate.matching.pdq_index import HammingIndex
from gate.proxy.budget import MemoryBudget
from gate.scan.bank_diff import BankDiff
from gate.scan.retro import RetroHunt
from gate.signals import SignalType
from gate.store.embedded import EmbeddedPostgres
from gate.store.pool import Pool

PLANTED = 100
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Row i's PDQ hash and SHA-256, the same in SQL and in Python.
PDQ_SQL = "md5('p' || i) || md5('q' || i)"
SHA_SQL = "md5('s' || i) || md5('t' || i)"
INDEXES = (
    "decisions_time_idx", "decisions_did_time_idx", "decisions_sha256_idx", "decisions_cid_idx",
    "decisions_verdict_time_idx", "decisions_rule_time_idx",
)  # fmt: skip


def pdq_of(i: int) -> str:
    return hashlib.md5(f"p{i}".encode()).hexdigest() + hashlib.md5(f"q{i}".encode()).hexdigest()


def sha_of(i: int) -> str:
    return hashlib.md5(f"s{i}".encode()).hexdigest() + hashlib.md5(f"t{i}".encode()).hexdigest()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def load(pool: Pool, n: int) -> float:
    started = time.perf_counter()
    async with pool.transaction() as conn:
        for name in INDEXES:
            await conn.execute(f"DROP INDEX IF EXISTS {name}")
    step = 1_000_000
    for lo in range(1, n + 1, step):
        hi = min(n, lo + step - 1)
        await pool.execute(
            "INSERT INTO decisions (id, time, source, did, did_method, verified_how, sha256, md5, sha1, cid, size,"
            " media_type, pdq, verdict, rule, reason)"
            " SELECT md5('id' || i)::uuid, now() - (i || ' seconds')::interval, 'upload', 'did:plc:bench' || (i % 50000),"
            " 'access_jwt', 'pds', "
            + SHA_SQL
            + ", md5('m' || i), md5('h' || i) || 'abcdefgh', 'bafkrei' || md5('c' || i),"
            " 1000, 'image/jpeg', jsonb_build_array(jsonb_build_object('hash', "
            + PDQ_SQL
            + ", 'quality', 90)),"
            " 'forward', 'no_match', 'no_match' FROM generate_series($1::bigint, $2::bigint) i",
            lo,
            hi,
        )
    for ddl in (
        "CREATE INDEX decisions_time_idx ON decisions (time)",
        "CREATE INDEX decisions_sha256_idx ON decisions (sha256)",
        "CREATE INDEX decisions_cid_idx ON decisions (cid)",
        "CREATE INDEX decisions_did_time_idx ON decisions (did, time)",
    ):
        await pool.execute(ddl)
    await pool.execute("ANALYZE decisions")
    return time.perf_counter() - started


def new_hashes(n: int, m: int) -> BankDiff:
    rng = np.random.default_rng(15)
    words = rng.integers(0, 2**64, size=(4, m), dtype=np.uint64, endpoint=False)
    planted = rng.choice(np.arange(1, n + 1), size=PLANTED, replace=False)
    for j, i in enumerate(planted.tolist()):
        value = int(pdq_of(i), 16) ^ int(rng.integers(1, 2**20))  # 1–20 bits off a stored hash
        for w in range(4):
            words[w, j] = (value >> (64 * (3 - w))) & (2**64 - 1)
    hexes = ["".join(f"{int(words[w, j]):016x}" for w in range(4)) for j in range(m)]
    entries: list[Entry] = [("new", "new.csv", j + 1, None) for j in range(m)]
    shas: dict[str, list[Entry]] = {
        sha_of(int(i)): [("new", "new.csv", m + k + 1, None)] for k, i in enumerate(planted.tolist())
    }
    for k in range(m - PLANTED):
        shas[hashlib.sha256(str(k).encode()).hexdigest()] = [("new", "new.csv", m + PLANTED + k + 1, None)]
    return BankDiff({SignalType.SHA256: shas}, words, entries, hexes)


def baseline(diff: BankDiff, n: int, sample: int) -> float:
    """Seconds the gate's per-query index would take for all n stored hashes (sampled, extrapolated)."""
    index = HammingIndex(diff.pdq_hexes, 256)
    queries = [pdq_of(i) for i in range(1, sample + 1)]
    started = time.perf_counter()
    for q in queries:
        index.search(q, 31)
    return (time.perf_counter() - started) / sample * n


FULL = (10_000_000, 100_000)
QUICK = (200_000, 10_000)
GOAL_SECONDS = 600  # "minutes on one core" for the full size: ten of them at most


def run(report: Report, quick: bool) -> None:
    """The ``retro`` section of ``python -m bench``: this module in a process of its own."""
    n, m = QUICK if quick else FULL
    done = subprocess.run(
        [sys.executable, "-m", "bench.retro", str(n), str(m), "--json"],
        capture_output=True, text=True, check=False, timeout=6 * 3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench.retro failed:\n{done.stderr[-2000:]}")
    r = json.loads(done.stdout.splitlines()[-1])
    table = report.table(
        "Retro-hunt: stored decisions against new bank hashes (PDQ at 31 bits and SHA-256), one core",
        [
            "stored decisions",
            "new PDQ + SHA-256",
            "find s",
            "planted found (PDQ, SHA-256)",
            "peak RSS MB",
            "per-hash index s (extrapolated)",
            "speed-up",
        ],
        note="RetroHunt.find as shipped: stored PDQ hashes streamed by one binary COPY and joined block by "
        "block against the new ones (gate/scan/pdq_join.py), SHA-256 by index lookup; the Python process "
        "pinned to one core (Postgres in its own process). Baseline: the gate's upload-path index "
        "(HammingIndex.search per stored hash) on a sample, extrapolated. Peak RSS: the whole process, "
        "while finding.",
    )
    table.add(
        **{
            "stored decisions": f"{n:,}",
            "new PDQ + SHA-256": f"{m:,} + {m:,}",
            "find s": round(r["find_s"], 1),
            "planted found (PDQ, SHA-256)": f"{r['pdq_hits']}/{PLANTED}, {r['sha_hits']}/{PLANTED}",
            "peak RSS MB": round(r["peak_rss_mb"]),
            "per-hash index s (extrapolated)": round(r["baseline_s"]),
            "speed-up": round(r["baseline_s"] / r["find_s"], 1),
        }
    )
    if not quick:
        report.target(
            "Retro-hunt, 10M stored × 100k new hashes (issue 15)",
            f"minutes on one core (≤ {GOAL_SECONDS // 60} min)",
            f"{r['find_s']:.0f} s, peak RSS {r['peak_rss_mb']:.0f} MB",
            r["find_s"] <= GOAL_SECONDS,
        )


async def main(n: int, m: int, as_json: bool = False) -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # this process: one core
    with tempfile.TemporaryDirectory(prefix="bench-retro-") as work:
        embedded = EmbeddedPostgres(Path(work) / "pg")
        dsn = await asyncio.to_thread(embedded.start)
        pool = Pool(dsn, command_timeout=3600.0)
        try:
            await pool.get()
            print(f"loading {n:,} decisions...", file=sys.stderr, flush=True)
            loaded = await load(pool, n)
            print(f"loaded in {loaded:.0f} s", file=sys.stderr, flush=True)
            diff = new_hashes(n, m)
            before = rss_mb()
            # find() needs only the pool (a review's budget is never reached here)
            hunt = RetroHunt(pool, None, None, None, budget=MemoryBudget(1))  # type: ignore[arg-type]
            started = time.perf_counter()
            hits = await hunt.find(diff, EPOCH, 31)
            took = time.perf_counter() - started
            peak = rss_mb()
            base = baseline(diff, n, 2000)
        finally:
            await pool.close()
            await asyncio.to_thread(embedded.stop)
    pdq_hits = sum(1 for found in hits.values() if any(h.signal is SignalType.PDQ for h in found))
    sha_hits = sum(1 for found in hits.values() if any(h.signal is SignalType.SHA256 for h in found))
    if as_json:
        result = {"n": n, "m": m, "find_s": took, "pdq_hits": pdq_hits, "sha_hits": sha_hits}
        print(json.dumps(result | {"peak_rss_mb": peak, "rss_before_mb": before, "baseline_s": base}))
        return
    print(
        f"retro-hunt: {n:,} stored decisions x {m:,} new PDQ + {m:,} new SHA-256 bank hashes, 31 bits, one core"
    )
    print(
        f"  find: {took:.1f} s; hits: {pdq_hits} by PDQ (planted {PLANTED}), {sha_hits} by SHA-256 (planted {PLANTED})"
    )
    print(f"  peak RSS of the gate process: {peak:.0f} MB ({before:.0f} MB before the hunt)")
    print(
        f"  baseline (HammingIndex.search per stored hash, extrapolated): {base:.0f} s -> {base / took:.1f}x"
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:] if a != "--json"]
    n_m = (args + list(FULL)[len(args) :])[:2]
    asyncio.run(main(n_m[0], n_m[1], "--json" in sys.argv))
