"""Where the hashing CPU work should run: thread pool vs process pool, for 1024 px and 12 MP JPEGs.

Run: python -m bench.hashing_pool [ROUNDS]. Every number is measured in this run and printed as a
ratio against baselines from the same run:
- ``serial``: ``hash_bytes`` called in the main thread, one upload after another (one core);
- ``threatexchange``: full-resolution PDQ as HMA computes it (``pdq_from_bytes``), for the fast path.
Configurations (2 workers each, as on the 2-core target machine), measured interleaved so that load
from elsewhere on the machine hits each alike:
- ``thread``: digests and image work in a thread pool (pdqhash holds the GIL);
- ``process``: the gate's ``Hasher``: the event loop writes the body to a worker process's socket, which
  decodes + PDQs it with the digests in a side thread, and answers in JSON (gate/hashing/pool.py);
- ``ProcessPoolExecutor``: the previous design: digests in a thread of the gate, decode + PDQ in a
  ``concurrent.futures`` process pool (pickled through its queue-management and feeder threads).
Besides latency (concurrency 1) and throughput (concurrency 8), it reports how late the event loop
wakes from a 1 ms sleep while hashing runs: the delay every other request through the gate would see.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

from gate.hashing.digests import digests
from gate.hashing.hasher import Hasher, hash_bytes
from gate.hashing.image import hash_image
from gate.hashing.options import HashOptions
from gate.hashing.worker import prepare_process
from tests.unit.hashing.corpus import encode, photo

OPTIONS = HashOptions()
CONCURRENCY = 8
HashOne = Callable[[], Awaitable[object]]


def corpus() -> dict[str, bytes]:
    coffee = photo("coffee.png").convert("RGB")
    phone = coffee.resize((4032, 3024), Image.Resampling.BICUBIC)
    # An upscale is smoother than a camera's output and compresses to ~0.9 MB; sensor-like grain
    # brings it to ~2 MB, closer to a phone photo: the body size is what crosses to the worker.
    grain = np.random.default_rng(0).normal(0, 6, (3024, 4032, 3))
    grainy = Image.fromarray(np.clip(np.asarray(phone) + grain, 0, 255).astype(np.uint8))
    return {
        "1024px JPEG": encode(coffee.resize((1024, 683), Image.Resampling.BICUBIC), "JPEG"),
        "12MP JPEG": encode(phone, "JPEG"),
        "12MP JPEG, grain": encode(grainy, "JPEG"),
    }


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    busy: float = 0.0
    done: int = 0
    lags: list[float] = field(default_factory=list)

    def latency_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    def rate(self) -> float:
        return self.done / self.busy

    def lag_p99_ms(self) -> float:
        ordered = sorted(self.lags) or [0.0]
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


async def measure(body: bytes, rounds: int) -> dict[str, Sample]:
    loop = asyncio.get_running_loop()
    hasher = Hasher(workers=2)
    context = multiprocessing.get_context("forkserver")
    processes = ProcessPoolExecutor(2, mp_context=context, initializer=prepare_process)
    threads = ThreadPoolExecutor(2)
    try:
        await hasher.warm_up()
        await asyncio.gather(*(loop.run_in_executor(processes, prepare_process) for _ in range(2)))

        async def serial() -> object:
            return hash_bytes(body, OPTIONS)  # blocks the loop: that is what the baseline is

        async def threaded() -> object:
            digested = loop.run_in_executor(threads, digests, body)
            image = await loop.run_in_executor(threads, hash_image, body, "image/jpeg", OPTIONS)
            return image, await digested

        async def via_hasher() -> object:
            return await hasher.hash(body, OPTIONS)

        configs: dict[str, HashOne] = {
            "serial hash_bytes (baseline)": serial,
            "thread": threaded,
            "process": via_hasher,
        }

        async def executor() -> object:
            digested = loop.run_in_executor(threads, digests, body)
            image = await loop.run_in_executor(processes, hash_image, body, "image/jpeg", OPTIONS)
            return image, await digested

        configs["ProcessPoolExecutor (previous design)"] = executor
        samples = {name: Sample() for name in configs}
        for _ in range(rounds):
            for name, hash_one in configs.items():
                start = time.perf_counter()
                await hash_one()
                samples[name].latencies.append(time.perf_counter() - start)
        for _ in range(max(1, rounds // 5)):
            for name, hash_one in configs.items():
                samples[name].busy += await burst(hash_one, CONCURRENCY * 2, samples[name].lags)
                samples[name].done += CONCURRENCY * 2
    finally:
        await hasher.close()
        processes.shutdown()
        threads.shutdown()
    return samples


async def burst(hash_one: HashOne, total: int, lags: list[float]) -> float:
    """Seconds to hash ``total`` uploads with CONCURRENCY in flight; loop wake-up delays into ``lags``."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    running = True

    async def ticker() -> None:
        while running:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - start - 0.001)

    async def one() -> None:
        async with semaphore:
            await hash_one()

    tick = asyncio.create_task(ticker())
    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    elapsed = time.perf_counter() - start
    running = False
    await tick
    return elapsed


def full_resolution_ms(body: bytes, rounds: int) -> tuple[float, float]:
    """(threatexchange full-resolution PDQ, gate hash_bytes) in CPU milliseconds, interleaved.

    CPU time rather than wall time: both run on one core in this thread, and CPU time is what the
    per-upload cost is, whatever else the machine is doing.
    """
    full, fast = [], []
    for _ in range(rounds):
        start = time.process_time()
        pdq_from_bytes(body)
        full.append(time.process_time() - start)
        start = time.process_time()
        hash_bytes(body, OPTIONS)
        fast.append(time.process_time() - start)
    return statistics.median(full) * 1000, statistics.median(fast) * 1000


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(f"hashing pool benchmark: 2 workers, concurrency {CONCURRENCY}, {rounds} rounds\n")
    print("| body | configuration | ms (c=1) | vs serial | uploads/s (c=8) | vs serial | loop lag p99 ms |")
    print("|---|---|---|---|---|---|---|")
    notes = []
    for kind, body in corpus().items():
        label = f"{kind} ({len(body) / 1e6:.1f} MB)"
        full_ms, fast_ms = full_resolution_ms(body, max(3, rounds // 4))
        notes.append(
            f"{label}: gate hash_bytes {fast_ms:.1f} CPU ms, threatexchange full-resolution PDQ "
            f"{full_ms:.1f} CPU ms: {full_ms / fast_ms:.1f}x less"
        )
        samples = asyncio.run(measure(body, rounds))
        base = samples.pop("serial hash_bytes (baseline)")
        print(
            f"| {label} | serial hash_bytes (baseline) | {base.latency_ms():.1f} | 1.00x "
            f"| {base.rate():.1f} | 1.00x | (blocks it) |"
        )
        for name, sample in samples.items():
            print(
                f"| {label} | {name} | {sample.latency_ms():.1f} | {sample.latency_ms() / base.latency_ms():.2f}x "
                f"| {sample.rate():.1f} | {sample.rate() / base.rate():.2f}x | {sample.lag_p99_ms():.1f} |"
            )
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
