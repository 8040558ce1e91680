"""Cost of the HMA step per upload, against the fake HMA at a realistic 8 ms service time.

Run: python -m bench.hma [UPLOADS]. The fake runs in its own process (so its work does not count as the
gate's), answering every GET /m/lookup after SERVICE seconds — HMA 1.1.7 measured 8-9 ms median.
For one PDQ hash and for a dihedral upload (8 hashes), with and without the answer cache, it prints the
median time of ``HmaMatcher.match`` per upload and two ratios measured in the same run:

* ``added``: (step - service time) / service time, the overhead beyond HMA's own work (0 = none; a
  negative number with the cache on: the cache saves the service time);
* ``vs bare``: the step over a bare ``httpx`` client sending the same GETs concurrently (what any client
  pays for HTTP): the gate's own cost (planning, concurrency limit, breaker, cache, parsing).

"dihedral, 1 worker" serialises the fake like a one-worker HMA (8 x 8 ms): there the service time
dominates and only the cache helps. "100 frames" is an animated upload with 100 distinct frame hashes
(issue 12: every frame is looked up): its service floor is 100 lookups 16 at a time, 7 x 8 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import multiprocessing
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import httpx

from gate.matching.answer_cache import AnswerCache
from gate.matching.breaker import CircuitBreaker
from gate.matching.hma import HmaMatcher
from gate.matching.hma_client import HmaClient
from gate.policy.plan import compile_plan
from gate.types import PdqHash, Verdict
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import BASE_PDQ, OTHER_PDQ, flip, hma_rule, image_hashes, make_policy

SERVICE = 0.008
PLAN = compile_plan(make_policy([hma_rule("hma", Verdict.REJECT, 31)], dihedral=True))


def _serve(port_queue: multiprocessing.Queue[int], serialise: bool) -> None:
    async def run() -> None:
        hma = FakeHma(latency=SERVICE, serialise=serialise)
        hma.add_bank("BENCH")
        hma.add_signal("BENCH", "pdq", BASE_PDQ)
        hma.add_signal("BENCH", "pdq", OTHER_PDQ)
        await hma.start()
        port_queue.put(int(hma.url.rsplit(":", 1)[1]))
        await asyncio.Event().wait()

    asyncio.run(run())


CONCURRENCY = 16


@dataclass
class Row:
    name: str
    step_ms: float
    bare_ms: float
    service_ms: float  # HMA's own time for the upload's lookups, CONCURRENCY at a time (or serialised)


async def measure(url: str, pdqs: list[str], uploads: int, cache: bool) -> tuple[float, float]:
    """Median ms per upload: (HmaMatcher.match, bare concurrent httpx GETs of the same hashes)."""
    client = HmaClient(url, timeout=5.0, max_connections=CONCURRENCY)
    matcher = HmaMatcher(
        client,
        deadline=10.0,
        request_timeout=5.0,
        concurrency=CONCURRENCY,
        cache=AnswerCache(10_000 if cache else 0, 3600.0),
        breaker=CircuitBreaker(1000, 60.0),
    )
    bare = httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=CONCURRENCY), trust_env=False)
    step: list[float] = []
    base: list[float] = []
    try:
        for n in range(uploads + 5):  # the first 5 warm the pools (and, with the cache on, the cache)
            hashes = image_hashes(*pdqs[:1], body=b"same image" if cache else str(n).encode())
            hashes = replace(hashes, pdq=tuple(PdqHash(p, 100, frame=i) for i, p in enumerate(pdqs)))
            started = time.perf_counter()
            result = await matcher.match(hashes, PLAN)
            step.append(time.perf_counter() - started)
            assert not result.failures and result.matches, result
            seed = hashlib.sha256(str(n).encode()).hexdigest()
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    bare.get("/m/lookup", params={"signal_type": "pdq", "signal": p, "seed": seed})
                    for p in pdqs
                )
            )
            base.append(time.perf_counter() - started)
            assert all(a.status_code == 200 for a in answers)
    finally:
        await bare.aclose()
        await matcher.aclose()
    return statistics.median(step[5:]) * 1000, statistics.median(base[5:]) * 1000


@contextlib.contextmanager
def fake_process(serialise: bool) -> Iterator[str]:
    """The URL of the fake HMA (``_serve``) in a process of its own: the client measured does not share
    its event loop or its GIL."""
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[int] = ctx.Queue()
    process = ctx.Process(target=_serve, args=(queue, serialise), daemon=True)
    process.start()
    try:
        yield f"http://127.0.0.1:{queue.get(timeout=30)}"
    finally:
        process.terminate()
        process.join()


def with_fake(serialise: bool, runs: list[tuple[str, list[str], bool]], uploads: int) -> list[Row]:
    with fake_process(serialise) as url:
        rows = []
        for name, pdqs, cache in runs:
            step, bare = asyncio.run(measure(url, pdqs, uploads, cache))
            rounds = len(pdqs) if serialise else math.ceil(len(pdqs) / CONCURRENCY)
            rows.append(Row(name, step, bare, rounds * SERVICE * 1000))
        return rows


def main() -> None:
    uploads = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    one = [BASE_PDQ]
    dihedral = [BASE_PDQ] + [flip(OTHER_PDQ, n) for n in range(1, 8)]
    frames = [BASE_PDQ] + [flip(OTHER_PDQ, n) for n in range(1, 100)]
    rows = with_fake(
        False,
        [
            ("one PDQ, no cache", one, False),
            ("one PDQ, cache", one, True),
            ("dihedral (8), no cache", dihedral, False),
            ("dihedral (8), cache", dihedral, True),
            ("100 frames, no cache", frames, False),
        ],
        uploads,
    )
    rows += with_fake(True, [("dihedral, 1 worker, no cache", dihedral, False)], uploads // 4 or 1)
    print(f"HMA step per upload: fake HMA at {SERVICE * 1000:.0f} ms per lookup, {uploads} uploads, medians")
    print("added = (step - service) / service: the gate's overhead beyond HMA's service time (HTTP included)")
    print("vs bare = step / bare httpx client sending the same GETs: the gate's own code")
    print(f"{'scenario':<30} {'service':>8} {'step ms':>8} {'bare ms':>8} {'added':>8} {'vs bare':>8}")
    for row in rows:
        service = row.service_ms
        print(
            f"{row.name:<30} {service:8.1f} {row.step_ms:8.2f} {row.bare_ms:8.2f} "
            f"{(row.step_ms - service) / service:8.2f} {row.step_ms / row.bare_ms:7.2f}x"
        )


if __name__ == "__main__":
    main()
