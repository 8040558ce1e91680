"""Does the decision log cost an upload anything? And how fast does its writer insert?

Run: python -m bench.decision_log [SECONDS_PER_ROUND] [RATE] (defaults 5, 200). Everything is measured in this run:

1. Latency at a fixed offered load of 200 uploads/s of 8 KiB non-image bodies (open loop: uploads start on schedule whatever the
   previous ones do), through the real gate app on a real port in front of a stand-in PDS; the load
   generator and the stand-in PDS run in processes of their own, so the gate's event loop is its own. Two
   configurations, measured interleaved (A B A B...) so load from elsewhere on the machine hits both:
   - ``log``: the gate as shipped, its ``DecisionLog`` writing to an embedded Postgres;
   - ``blackhole``: the same gate, its sink replaced by one that drops every record.
   Printed: p50 / p95 / p99 upload latency of each and the ratio log / blackhole.
2. The writer alone: 50 000 decisions submitted at once to a ``DecisionLog``; sustained rows/s until
   the last is committed, for a few batch sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from multiprocessing.queues import Queue
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web

from gate.app import create_app
from gate.deps import open_deps
from gate.record import DecisionRecord, NullSink
from gate.settings import Settings
from gate.store.decision_log import DecisionLog
from gate.store.embedded import EmbeddedPostgres
from gate.store.pool import Pool
from tests.integration.store.records import forward, quarantine, reject, shadow
from tests.support.policies import RESPONSES
from tests.support.serving import serving
from tests.support.upstream import RecordingUpstream

RATE = 200  # uploads per second offered (second argument overrides, to find the machine's knee)
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
POLICY = (
    """
on_unhashable = "quarantine"
on_unscannable = "forward"
on_matcher_error = "reject"
on_log_failure = "forward"
"""
    + RESPONSES
    + """
[[rules]]
name = "block-exact"
source = "local"
banks = ["blocklist"]
signal_types = ["sha256"]
action = "reject"
"""
)


def bodies(count: int) -> list[bytes]:
    """Distinct 8 KiB non-image bodies: hashed (digests, CID), sniffed as unscannable and forwarded by
    the policy, with no PDQ. Cheap uploads keep the shared 2-core machine below saturation at 200/s
    (image uploads would measure the hashing queue) and make the log's share of the latency as
    visible as it can be. Distinct, so none is answered from the verdict cache."""
    rng = np.random.default_rng(7)
    return [b"\x00GATE" + rng.bytes(8186) for _ in range(count)]


@contextlib.asynccontextmanager
async def gate(settings: Settings, blackhole: bool) -> AsyncIterator[tuple[str, object]]:
    async with open_deps(settings) as deps:
        if blackhole:
            deps.sink = NullSink()  # the pipeline is built from deps below: it gets the blackhole
        async with serving(create_app(deps)) as url:
            yield url, deps.sink


def _load_process(url: str, uploads: list[bytes], rate: int, out: Queue[list[float]]) -> None:
    out.put(asyncio.run(offered_load(url, uploads, rate)))


def measure(url: str, uploads: list[bytes]) -> list[float]:
    """The load generator runs in its own process, so the gate's event loop is the gate's alone."""
    ctx = multiprocessing.get_context("spawn")
    out: Queue[list[float]] = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(url, uploads, RATE, out))
    proc.start()
    latencies = out.get()
    proc.join()
    return latencies


async def offered_load(url: str, uploads: list[bytes], rate: int) -> list[float]:
    """Start one upload every 1/rate s; return each one's latency (s)."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes) -> None:
            started = time.perf_counter()
            headers = {"Content-Type": "application/octet-stream", "Authorization": "Bearer x.y.z"}
            async with session.post(url + UPLOAD, data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"upload answered {r.status}")
            latencies.append(time.perf_counter() - started)

        tasks = []
        t0 = time.perf_counter()
        for i, body in enumerate(uploads):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    return latencies


def _upstream_process(out: Queue[int]) -> None:
    async def main() -> None:
        runner = web.AppRunner(rec_app(RecordingUpstream()), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        out.put(int(runner.addresses[0][1]))
        await asyncio.Event().wait()

    asyncio.run(main())


@contextlib.contextmanager
def upstream_process() -> Iterator[str]:
    """The stand-in PDS in its own process too."""
    ctx = multiprocessing.get_context("spawn")
    out: Queue[int] = ctx.Queue()
    proc = ctx.Process(target=_upstream_process, args=(out,), daemon=True)
    proc.start()
    try:
        yield f"http://127.0.0.1:{out.get(timeout=60)}"
    finally:
        proc.terminate()
        proc.join()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


async def latency_bench(seconds: float, work: Path, dsn: str) -> None:
    per_round = int(RATE * seconds)
    rounds = 4
    pool = bodies(per_round * rounds + 200)
    (work / "banks").mkdir()
    (work / "banks" / "blocklist.csv").write_text("\n")
    (work / "policy.toml").write_text(POLICY)
    with upstream_process() as upstream:
        settings = Settings.from_env(
            {
                "GATE_UPSTREAM": upstream,
                "GATE_DATA_DIR": str(work / "var"),
                "GATE_POLICY": str(work / "policy.toml"),
                "GATE_BANKS_DIR": str(work / "banks"),
                "GATE_HASH_WORKERS": "1",
                "GATE_VERDICT_CACHE_SIZE": "0",
                "GATE_MAX_UPLOADS_PER_IP": "0",  # the offered load is many clients, all on loopback
                "DATABASE_URL": dsn,
            }
        )
        results: dict[str, list[float]] = {"log": [], "blackhole": []}
        used = 0
        for name in ("log", "blackhole"):  # warm-up both: process pool, pool connections
            async with gate(settings, name == "blackhole") as (url, _):
                await asyncio.to_thread(measure, url, pool[used : used + 100])
                used += 100
        for r in range(rounds):
            for name in ("log", "blackhole") if r % 2 == 0 else ("blackhole", "log"):
                async with gate(settings, name == "blackhole") as (url, sink):
                    results[name] += await asyncio.to_thread(measure, url, pool[used : used + per_round // 2])
                    used += per_round // 2
                    if isinstance(sink, DecisionLog):
                        await sink.wait_idle()
        print(f"upload latency at {RATE} uploads/s offered, {len(results['log'])} uploads per configuration")
        print(f"{'':12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
        for name, lat in results.items():
            mean = statistics.fmean(lat) * 1000
            print(f"{name:12}{pct(lat, 50):9.2f}{pct(lat, 95):9.2f}{pct(lat, 99):9.2f}{mean:9.2f}")
        log, hole = results["log"], results["blackhole"]
        print(
            "ratio log/blackhole: "
            + "  ".join(f"p{q} {pct(log, q) / pct(hole, q):.3f}" for q in (50, 95, 99))
            + f"  mean {statistics.fmean(log) / statistics.fmean(hole):.3f}"
        )


def rec_app(rec: RecordingUpstream) -> web.Application:
    app = web.Application(client_max_size=1 << 26)
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    return app


async def writer_bench(dsn: str, work: Path) -> None:
    count = 50_000
    makers = (forward, reject, quarantine, shadow)
    print(f"\nwriter alone: {count} decisions submitted at once, rows/s until the last commit")
    for batch in (100, 500, 2000):
        records: list[DecisionRecord] = [makers[n % 4](n) for n in range(count)]
        db = Pool(dsn)
        log = DecisionLog(db, work / f"spool-{batch}", queue_size=count, batch_size=batch)
        await log.start()
        started = time.perf_counter()
        for record in records:
            log.submit(record)
        await log.wait_idle(limit=600)
        elapsed = time.perf_counter() - started
        await log.close()
        await db.close()
        print(f"  batch {batch:5}: {count / elapsed:9.0f} rows/s")


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="upload-gate-bench-") as tmp:
        work = Path(tmp)
        embedded = EmbeddedPostgres(work / "pg")
        dsn = await asyncio.to_thread(embedded.start)
        try:
            await latency_bench(seconds, work, dsn)
            await writer_bench(dsn, work)
        finally:
            await asyncio.to_thread(embedded.stop)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        RATE = int(sys.argv[2])
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0))
