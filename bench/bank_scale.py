"""NCMEC-scale local banks (issue 18, target 5): a 10M-row PDQ bank file and a 50M-row MD5 + SHA-1 bank
file, loaded by ``LocalBanks`` as the gate loads them, each measurement in a fresh process so its RSS is
its own.

* **first start**: read the CSV, index it, write the bank cache (keyed by the files' SHA-256) and map
  it back; **later starts**: the same files, served from the cache. Seconds, and RSS after loading;
* **queries**: PDQ at threshold 31 (each a banked hash with 0–31 bits flipped), p50 / p99 over queries
  (each query's best of three, as in the matching section), RSS after them; exact lookups in µs;
* **reload** of a changed bank (one row appended): seconds, peak RSS while it runs (the new set is built
  beside the old one) and RSS once it has settled (the new set mapped from its cache entry, the old one
  unmapped).

Peer, same run: the hashes' own bytes (what any index must hold at least) and, for the PDQ bank, numpy
brute force over them.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import Report, percentile_ms

HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
THRESHOLD = 31


def write_bank(path: Path, prefix: str, digests: np.ndarray) -> None:
    """``prefix<hex>`` rows for ``(n, width)`` uint8 digests appended to ``path``, in blocks (fast,
    bounded memory)."""
    with path.open("ab") as f:
        for start in range(0, len(digests), 1 << 20):
            block = digests[start : start + (1 << 20)]
            n, width = block.shape
            line = np.empty((n, len(prefix) + 2 * width + 1), dtype=np.uint8)
            line[:, : len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)
            line[:, len(prefix) : -1 : 2] = HEX[block >> 4]
            line[:, len(prefix) + 1 : -1 : 2] = HEX[block & 15]
            line[:, -1] = ord("\n")
            f.write(line.tobytes())


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process, MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)


class AnonPeak:
    """The highest RssAnon of this process while the block runs, sampled every 10 ms, MB: the memory the
    kernel cannot drop (mapped bank pages are file-backed: under pressure they are evicted and re-read)."""

    def __init__(self) -> None:
        self.mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    self.mb = max(self.mb, int(line.split()[1]) / 1024)
            if self._done.wait(0.01):
                return

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def _child(
    banks_dir: str, cache_dir: str, queries: list[str], exact: list[tuple[str, str]], reload: bool
) -> dict[str, Any]:
    from gate.matching.bank_cache import BankCache
    from gate.matching.local import LocalBanks
    from gate.signals import SignalType

    started = time.perf_counter()
    banks = LocalBanks(Path(banks_dir), BankCache(Path(cache_dir)))
    with AnonPeak() as anon:
        banks.load()
    out: dict[str, Any] = {"load_s": time.perf_counter() - started, "anon_loading": anon.mb}
    gc.collect()
    out["rss_loaded"], out["peak_loading"] = rss_mb()
    out["index_mb"] = banks.banks.nbytes / 2**20
    if queries:
        [part] = banks.banks.perceptual(SignalType.PDQ)
        index = part.index
        times = []
        for q in queries:
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                found, _ = index.search(q, THRESHOLD)
                best = min(best, time.perf_counter() - t)
            assert found.size, "every query is near a banked hash"
            times.append(best)
        out["p50_ms"], out["p99_ms"] = percentile_ms(times, 50), percentile_ms(times, 99)
    if exact:
        times = []
        for signal, value in exact:
            t = time.perf_counter()
            hits = banks.banks.exact(SignalType(signal), value)
            times.append(time.perf_counter() - t)
            assert hits
        out["exact_us"] = statistics.median(times) * 1e6
    out["rss_queried"], _ = rss_mb()
    if reload:
        first = next(Path(banks_dir).glob("*.csv"))
        with first.open("a") as f:
            f.write("md5," + "ab" * 16 + "\n")
        reset_peak()
        started = time.perf_counter()
        with AnonPeak() as anon:
            assert asyncio.run(banks.reload_if_changed())
        out["reload_s"], out["anon_reloading"] = time.perf_counter() - started, anon.mb
        gc.collect()
        out["rss_reloaded"], out["peak_reloading"] = rss_mb()
    return out


def _in_child(*args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(_child, args)
    return result


def _near(rng: np.random.Generator, hashes: np.ndarray, count: int) -> list[str]:
    out = []
    for i in rng.choice(len(hashes), count, replace=False):
        q = hashes[i].copy()
        for p in rng.choice(256, int(rng.integers(0, THRESHOLD + 1)), replace=False):
            q[p // 8] ^= np.uint8(1 << (p % 8))
        out.append(q.tobytes().hex())
    return out


def run(report: Report, quick: bool) -> None:
    # Quick mode (CI) runs the same steps on small files: a smoke test, not the targets (shown "n/a").
    pdq_rows = 200_000 if quick else 10_000_000
    exact_rows = 1_000_000 if quick else 50_000_000
    rng = np.random.default_rng(18)
    table = report.table(
        "NCMEC-scale local banks: load, memory, queries and reload (each in a fresh process)",
        [
            "bank",
            "file MB",
            "start",
            "load s",
            "RSS MB loaded",
            "peak MB while loading",
            "anon peak MB while loading",
            "RSS MB after queries",
            "query p50 ms",
            "query p99 ms",
            "peer",
            "reload s",
            "peak MB while reloading",
            "anon peak MB while reloading",
            "RSS MB after reload",
        ],
        note="First start: CSV read, indexed, cached, mapped back. Later start: the same files served "
        "from the cache (keyed by their SHA-256). Reload: one row appended. RSS counts the mapped pages "
        "queries have touched; anon peak, sampled every 10 ms, is what the kernel cannot drop (mapped "
        "pages are file-backed). Peer of the exact bank: the same lookups in a bank 1/50 its size.",
    )
    with tempfile.TemporaryDirectory() as tmp:
        pdq_dir, exact_dir = Path(tmp) / "pdq", Path(tmp) / "exact"
        pdq_dir.mkdir()
        exact_dir.mkdir()
        hashes = rng.integers(0, 256, size=(pdq_rows, 32), dtype=np.uint8)
        write_bank(pdq_dir / "ncmec_pdq.csv", "pdq,", hashes)
        queries = _near(rng, hashes, 100 if quick else 400)
        rows64 = hashes.view(">u8").astype(np.uint64)
        q_words = [np.frombuffer(bytes.fromhex(q), dtype=">u8").astype(np.uint64) for q in queries[:5]]
        started = time.perf_counter()
        for q in q_words:
            np.flatnonzero(np.bitwise_count(rows64 ^ q).sum(axis=1, dtype=np.uint16) <= THRESHOLD)
        brute_ms = (time.perf_counter() - started) / len(q_words) * 1000
        hashes_mb = hashes.nbytes / 2**20
        del hashes, rows64
        half = exact_rows // 2
        md5 = rng.integers(0, 256, size=(half, 16), dtype=np.uint8)
        write_bank(exact_dir / "ncmec_md5.csv", "md5,", md5)
        probes = [("md5", md5[i].tobytes().hex()) for i in rng.choice(half, 200, replace=False)]
        del md5
        sha1 = rng.integers(0, 256, size=(half, 20), dtype=np.uint8)
        write_bank(exact_dir / "ncmec_md5.csv", "sha1,", sha1)
        probes += [("sha1", sha1[i].tobytes().hex()) for i in rng.choice(half, 200, replace=False)]
        exact_mb = half * (16 + 20) / 2**20
        del sha1
        # O(1) is shown against the same lookups in a bank 1/50 the size, mapped from its cache the same way.
        small_dir, small_half = Path(tmp) / "small", max(50_000, half // 50)
        small_dir.mkdir()
        small_probes = []
        for signal, width in (("md5", 16), ("sha1", 20)):
            digests = rng.integers(0, 256, size=(small_half, width), dtype=np.uint8)
            write_bank(small_dir / "small.csv", f"{signal},", digests)
            small_probes += [
                (signal, digests[i].tobytes().hex()) for i in rng.choice(small_half, 200, replace=False)
            ]
        for _ in range(2):  # the first builds the cache entry, the second is timed like the big bank
            small = _in_child(str(small_dir), str(Path(tmp) / "cache-small"), [], small_probes, False)
        results = {}
        for name, banks_dir, qs, ex, digests_mb in (
            (f"{pdq_rows / 1e6:g}M PDQ", pdq_dir, queries, [], hashes_mb),
            (f"{exact_rows / 1e6:g}M MD5 + SHA-1", exact_dir, [], probes, exact_mb),
        ):
            size = sum(p.stat().st_size for p in banks_dir.glob("*.csv")) / 2**20
            cache = Path(tmp) / f"cache-{banks_dir.name}"
            for start, reload in (("first", False), ("cached", True)):
                r = _in_child(str(banks_dir), str(cache), qs, ex, reload)
                results[(name, start)] = r
                peer = (
                    f"hashes alone {digests_mb:.0f} MB; brute force {brute_ms:.0f} ms"
                    if qs
                    else f"digests alone {digests_mb:.0f} MB; lookup at {2 * small_half / 1e6:g}M rows "
                    f"{small['exact_us']:.1f} µs"
                )
                table.add(
                    **{
                        "bank": name,
                        "file MB": size,
                        "start": start,
                        "load s": r["load_s"],
                        "RSS MB loaded": r["rss_loaded"],
                        "peak MB while loading": r["peak_loading"],
                        "anon peak MB while loading": r["anon_loading"],
                        "RSS MB after queries": r["rss_queried"],
                        "query p50 ms": r.get("p50_ms", ""),
                        "query p99 ms": r.get("p99_ms", ""),
                        "peer": peer,
                        "reload s": r.get("reload_s", ""),
                        "peak MB while reloading": r.get("peak_reloading", ""),
                        "anon peak MB while reloading": r.get("anon_reloading", ""),
                        "RSS MB after reload": r.get("rss_reloaded", ""),
                    }
                )
            if banks_dir is pdq_dir:
                first, cached = results[(name, "first")], results[(name, "cached")]
                rss = max(first["rss_queried"], cached["rss_queried"], cached["rss_reloaded"])
                report.target(
                    f"{name} local bank: queries at threshold 31",
                    "p50 ≤ 2 ms, p99 ≤ 5 ms",
                    f"p50 {cached['p50_ms']:.2f} ms, p99 {cached['p99_ms']:.2f} ms (brute force {brute_ms:.0f} ms)",
                    None if quick else cached["p50_ms"] <= 2 and cached["p99_ms"] <= 5,
                    issue=18,
                )
                report.target(
                    f"{name} local bank: memory and start-up",
                    "RSS ≤ 1.5 GB, start-up ≤ 60 s, reload without doubling for long",
                    f"RSS {rss:.0f} MB; start {first['load_s']:.0f} s first, {cached['load_s']:.1f} s cached; "
                    f"reload {cached['reload_s']:.0f} s: peak {cached['peak_reloading']:.0f} MB "
                    f"({cached['anon_reloading']:.0f} MB anonymous) for those seconds, "
                    f"then {cached['rss_reloaded']:.0f} MB",
                    None
                    if quick
                    else max(rss, cached["rss_reloaded"]) <= 1536
                    and max(first["load_s"], cached["load_s"]) <= 60,
                    issue=18,
                )
            else:
                first, cached = results[(name, "first")], results[(name, "cached")]
                report.target(
                    f"{name} exact local bank",
                    "RSS reported, O(1) lookups (≤ 2× the lookup in a bank 1/50 the size)",
                    f"RSS {cached['rss_queried']:.0f} MB (digests alone {digests_mb:.0f} MB), peak "
                    f"{max(first['peak_loading'], cached['peak_reloading']):.0f} MB while indexing; lookup "
                    f"{cached['exact_us']:.1f} µs, {cached['exact_us'] / small['exact_us']:.2f}× the lookup in a "
                    f"bank 1/50 the size",
                    None if quick else cached["exact_us"] <= 2 * small["exact_us"],
                    issue=18,
                )
