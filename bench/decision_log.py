"""Does the decision log cost an upload anything? And how fast does its writer insert?

Run: python -m bench.decision_log [SECONDS_PER_ROUND] [RATE] (defaults 5, 200); ``--sustained [SECONDS]``
runs section 3 alone (default 10 s a round). Everything is measured in this run:

1. Latency at a fixed offered load of 200 uploads/s of 8 KiB non-image bodies (open loop: uploads start on schedule whatever the
   previous ones do), through the real gate app on a real port in front of a stand-in PDS; the load
   generator and the stand-in PDS run in processes of their own, so the gate's event loop is its own. Two
   configurations, measured interleaved (A B A B...) so load from elsewhere on the machine hits both:
   - ``log``: the gate as shipped, its ``DecisionLog`` writing to an embedded Postgres;
   - ``blackhole``: the same gate, its sink replaced by one that drops every record.
   Printed: p50 / p95 / p99 upload latency of each and the ratio log / blackhole.
2. The writer alone: 50 000 decisions submitted at once to a ``DecisionLog``; sustained rows/s until
   the last is committed, for a few batch sizes.
3. Sustained (issue 18, target 6): 1,000 uploads/s offered for a while, each a decision, their verdicts
   cached (20 bodies, each sent again and again by its own credential: answered after a SHA-256, as a
   DPoP retry or a client's re-upload is), the gate with ``log`` and ``blackhole`` interleaved as in 1.
   Printed next to each target: the rate achieved, the rows Postgres holds against the uploads answered
   (nothing lost), and the latency ratio log / blackhole.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from multiprocessing.queues import Queue
from pathlib import Path

import aiohttp
import asyncpg
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
on_unhashable = "reject"
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


def measure(url: str, uploads: list[bytes], rate: int | None = None) -> list[float]:
    """The load generator runs in its own process, so the gate's event loop is the gate's alone."""
    ctx = multiprocessing.get_context("spawn")
    out: Queue[list[float]] = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(url, uploads, rate or RATE, out))
    proc.start()
    latencies = out.get()
    proc.join()
    return latencies


def credential(body: bytes) -> str:
    """One credential per body: a body sent again is its own caller's repeat (section 3)."""
    return f"Bearer x.y.{body[5:13].hex()}"


async def offered_load(url: str, uploads: list[bytes], rate: int) -> list[float]:
    """Start one upload every 1/rate s; return each one's latency (s)."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes) -> None:
            started = time.perf_counter()
            headers = {"Content-Type": "application/octet-stream", "Authorization": credential(body)}
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


def gate_settings(work: Path, data: str, upstream: str, dsn: str, **extra: str) -> Settings:
    """A benchmark gate's settings: its empty blocklist and the bench policy under ``work``, one hashing
    worker, ``data`` as its data directory, Postgres at ``dsn``."""
    (work / "banks").mkdir(exist_ok=True)
    (work / "banks" / "blocklist.csv").write_text("\n")
    (work / "policy.toml").write_text(POLICY)
    return Settings.from_env(
        {
            "GATE_UPSTREAM": upstream,
            "GATE_DATA_DIR": str(work / data),
            "GATE_POLICY": str(work / "policy.toml"),
            "GATE_BANKS_DIR": str(work / "banks"),
            "GATE_HASH_WORKERS": "1",
            "GATE_MAX_UPLOADS_PER_IP": "0",  # the offered load is many clients, all on loopback
            "DATABASE_URL": dsn,
            **extra,
        }
    )


async def latency_bench(seconds: float, work: Path, dsn: str) -> None:
    per_round = int(RATE * seconds)
    rounds = 4
    pool = bodies(per_round * rounds + 200)
    with upstream_process() as upstream:
        settings = gate_settings(work, "var", upstream, dsn, GATE_VERDICT_CACHE_SIZE="0")
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


SUSTAINED = 1000  # uploads (decisions) per second, the target
CLIENTS = 32  # kept-alive client connections of section 3
PAIRS = 3  # log / blackhole round pairs of section 3, per step


async def clients_load(url: str, uploads: list[bytes], seconds: float, rate: int | None) -> list[float]:
    """``CLIENTS`` clients on kept-alive connections for ``seconds``; every upload's latency (s).

    ``rate`` None: each client sends its next upload as soon as the last is answered (capacity).
    Else paced: client k's j-th upload is due at (k + j × CLIENTS) / rate, and its latency counts from
    then, so a gate falling behind shows as latency, not as a lower offered rate."""
    latencies: list[float] = []
    t0 = time.perf_counter()
    stop = t0 + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:

        async def client(k: int) -> None:
            i = k
            while True:
                due = time.perf_counter() if rate is None else t0 + i / rate
                if due >= stop:
                    return
                if due > time.perf_counter():
                    await asyncio.sleep(due - time.perf_counter())
                body = uploads[i % len(uploads)]
                i += CLIENTS
                headers = {"Content-Type": "application/octet-stream", "Authorization": credential(body)}
                async with session.post(url + UPLOAD, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"upload answered {r.status}")
                latencies.append(time.perf_counter() - due)

        await asyncio.gather(*(client(k) for k in range(CLIENTS)))
    return latencies


def _clients_process(
    url: str, uploads: list[bytes], seconds: float, rate: int | None, out: Queue[list[float]]
) -> None:
    out.put(asyncio.run(clients_load(url, uploads, seconds, rate)))


def clients(url: str, uploads: list[bytes], seconds: float, rate: int | None = None) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    out: Queue[list[float]] = ctx.Queue()
    proc = ctx.Process(target=_clients_process, args=(url, uploads, seconds, rate, out))
    proc.start()
    latencies = out.get()
    proc.join()
    return latencies


async def sustained_bench(seconds: float, work: Path, dsn: str) -> None:
    """Section 3: the capacity with and without the log (clients back to back), then latency and
    completeness at the target rate, or at 80 % of the capacity without the log when that is lower
    (clients paced)."""
    repeats = bodies(20)  # each sent again and again by its own credential: verdicts from the cache
    with upstream_process() as upstream:
        settings = gate_settings(work, "var-sustained", upstream, dsn)
        schema = Pool(dsn)
        await schema.get()  # the migrations the gates would apply on first use, before counting rows
        await schema.close()
        db = await asyncpg.connect(dsn)
        per_s: dict[str, list[float]] = {"log": [], "blackhole": []}
        latencies: dict[str, list[list[float]]] = {"log": [], "blackhole": []}
        answered = stored = 0

        async def round_(name: str, load: Callable[[str], list[float]], keep: bool) -> float:
            nonlocal answered, stored
            before = await _rows(db)
            async with gate(settings, name == "blackhole") as (url, sink):
                started = time.perf_counter()
                done = await asyncio.to_thread(load, url)
                elapsed = time.perf_counter() - started
                if isinstance(sink, DecisionLog):
                    await sink.wait_idle(limit=120)
            if keep and name == "log":
                answered += len(done)
                stored += await _rows(db) - before
            if keep:
                latencies[name].append(done)
            return len(done) / elapsed

        try:
            for name in ("log", "blackhole"):  # warm-up: pool connections, the hashing worker
                await round_(name, lambda url: clients(url, repeats, 1.0), keep=False)
            # Pairs of rounds, the order alternating: the other load on the machine drifts, so each
            # ratio is taken within its pair and the median pair reported.
            for r in range(PAIRS):
                for name in ("log", "blackhole") if r % 2 == 0 else ("blackhole", "log"):
                    per_s[name].append(await round_(name, lambda url: clients(url, repeats, seconds), False))
            rate = min(SUSTAINED, int(0.8 * statistics.median(per_s["blackhole"])))
            for r in range(PAIRS):
                for name in ("log", "blackhole") if r % 2 == 0 else ("blackhole", "log"):
                    await round_(name, lambda url: clients(url, repeats, seconds, rate), keep=True)
        finally:
            await db.close()
    print(f"\nsustained (issue 18, target 6): verdicts cached, {PAIRS} pairs of {seconds:g} s rounds")
    print(
        f"capacity, {CLIENTS} clients back to back, per round:  "
        + "  ".join(f"{name} {' '.join(f'{v:.0f}' for v in values)}/s" for name, values in per_s.items())
    )
    print(f"{CLIENTS} clients paced to {rate}/s in all, per round:")
    print(f"{'':12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for name, rounds in latencies.items():
        for lat in rounds:
            mean = statistics.fmean(lat) * 1000
            print(f"{name:12}{pct(lat, 50):9.2f}{pct(lat, 95):9.2f}{pct(lat, 99):9.2f}{mean:9.2f}")

    def paired(q: float) -> float:
        log, hole = latencies["log"], latencies["blackhole"]
        return statistics.median(pct(a, q) / pct(b, q) for a, b in zip(log, hole, strict=True))

    most = statistics.median(per_s["log"])
    share = statistics.median(a / b for a, b in zip(per_s["log"], per_s["blackhole"], strict=True))
    print(f"{'target':30}{'goal':34}measured (median of pairs)")
    print(
        f"{'decisions/s sustained':30}{f'≥ {SUSTAINED}/s on 2 cores':34}{most:.0f}/s with the log, "
        f"{share:.2f}× the same gate without it"
    )
    print(f"{'nothing lost':30}{'rows stored = uploads answered':34}{stored} of {answered}")
    print(
        f"{'upload latency unchanged':30}{f'log / blackhole at {rate}/s ≈ 1':34}"
        f"p50 {paired(50):.2f}, p99 {paired(99):.2f}"
    )


async def _rows(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM decisions"))


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


async def main(seconds: float, sustained: float | None) -> None:
    with tempfile.TemporaryDirectory(prefix="upload-gate-bench-") as tmp:
        work = Path(tmp)
        embedded = EmbeddedPostgres(work / "pg")
        dsn = await asyncio.to_thread(embedded.start)
        try:
            if sustained is None:
                await latency_bench(seconds, work, dsn)
                await writer_bench(dsn, work)
            await sustained_bench(sustained or 10.0, work, dsn)
        finally:
            await asyncio.to_thread(embedded.stop)


if __name__ == "__main__":
    args = sys.argv[1:]
    only_sustained = None
    if args[:1] == ["--sustained"]:
        only_sustained = float(args[1]) if len(args) > 1 else 10.0
        args = []
    if len(args) > 1:
        RATE = int(args[1])
    asyncio.run(main(float(args[0]) if args else 5.0, only_sustained))
