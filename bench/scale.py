"""Scale-out: two gate replicas (two ``upload-gate serve`` processes) on one shared Postgres behind nginx,
against one replica behind the same kind of nginx, in the same run; one decision log across both; and the
sizing table (uploads/s per core by format, memory per concurrent upload, Postgres writes per upload)
computed from what this run measured.

Replica A serves in both set-ups: nginx "one" proxies to A alone, nginx "two" balances A and B round robin.
Blocks through the two alternate, so both meet the same moments of a shared machine. Every upload is new
bytes (bench.load salts them), so every one is judged and logged. The replicas' decision rows land in one
schema of one embedded Postgres (DATABASE_URL, as an operator's replicas share one database); the log is
checked once both replicas have stopped (SIGTERM drains what they still hold).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench import corpus, nginx, procs
from bench.docs import PER_CORE
from bench.report import Report, Table, steady_rate
from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.hashing.worker import keep_heap_warm
from gate.store.embedded import EmbeddedPostgres
from tests.support.postgres import migrated, server_dir

SCHEMA = "bench_scale"
HASHING_TITLE = "Hashing cost per upload (one core, median over photos)"
# The sizes the sizing table has a row for (bench/corpus.py SIZES), where the hashing section measured
# them: ~1 MP (what many clients and bots upload, hashed at full resolution), what the Bluesky app
# sends (~2000 px), and a phone camera's 12 MP.
SIZING_SIZES = ("1024px", "2048px", "12MP")


def run(report: Report, quick: bool) -> None:
    if nginx.binary() is None:
        report.target("two replicas behind nginx", "measured", "nginx is not installed", None, issue=18)
        return
    photos = corpus.corpus(2 if quick else None, ("12MP",), ("JPEG",))
    concurrency, per_block, blocks = (16, 48, 2) if quick else (32, 192, 4)
    with server_dir() as pgdir, tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        embedded = EmbeddedPostgres(pgdir)
        server = embedded.start()
        try:
            dsn = asyncio.run(_schema(server))
            writes_before = asyncio.run(_writes(dsn))
            files = []
            for i, s in enumerate(photos):
                path = Path(tmp, f"{i}.jpg")
                path.write_bytes(s.body)
                files.append(str(path))
            m = _measure(dsn, files, concurrency, per_block, blocks)
            log = asyncio.run(_log(dsn))
            writes = asyncio.run(_writes(dsn)).since(writes_before)
        finally:
            embedded.stop()
    _report(report, m, log, writes, concurrency, quick)


async def _schema(server: str) -> str:
    """The decision log's own schema on the embedded server (migrated once, before both replicas start,
    as the operator guide says to do for replicas), as a DSN both replicas are given."""
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f"CREATE SCHEMA {SCHEMA}")
    finally:
        await conn.close()
    dsn = server + ("&" if "?" in server else "?") + f"search_path={SCHEMA}"
    await migrated(dsn)
    return dsn


@dataclass
class Writes:
    """Rows inserted + updated + deleted per table of the schema, and transactions committed in the
    database: Postgres's cumulative statistics, which a backend flushes when it exits (read them after
    the replicas have stopped)."""

    rows: dict[str, int]
    commits: int

    def since(self, before: Writes) -> Writes:
        return Writes(
            {k: n - before.rows.get(k, 0) for k, n in self.rows.items()}, self.commits - before.commits
        )


async def _writes(dsn: str) -> Writes:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS n FROM pg_stat_user_tables "
            "WHERE schemaname = $1",
            SCHEMA,
        )
        commits = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return Writes({r["relname"]: int(r["n"]) for r in rows}, int(commits))


async def _log(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS rows, count(DISTINCT id) AS ids, count(DISTINCT sha256) AS digests, "
            "count(*) FILTER (WHERE verdict = 'forward') AS forwarded FROM decisions"
        )
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


def _measure(dsn: str, files: list[str], c: int, per_block: int, blocks: int) -> dict[str, Any]:
    answered: Counter[int] = Counter()
    runs: dict[str, list[dict[str, Any]]] = {"one": [], "two": []}

    def upload(url: str, total: int) -> dict[str, Any]:
        result = procs.load(
            {
                "kind": "upload",
                "url": url,
                "files": files,
                "concurrency": c,
                "total": total,
                "media_type": "image/jpeg",
            }
        )
        answered.update({int(k): v for k, v in result["statuses"].items()})
        return result

    with (
        procs.upstream() as up,
        procs.gate(up, dsn=dsn) as a,
        procs.gate(up, dsn=dsn) as b,
        nginx.balancing([a.url]) as one,
        nginx.balancing([a.url, b.url]) as two,
    ):
        # Before any upload: what a replica holds afterwards (allocator arenas, buffers it keeps) is
        # part of what concurrent uploads cost it.
        idle = procs.RssSampler(a.pid).current()
        for front in (one, two):
            upload(front.url, c * 2)  # warm: connections, hash workers, nginx's keep-alive pool
        cpu_before = procs.cpu_seconds(a.pid) + procs.cpu_seconds(b.pid)
        peak = 0
        for _ in range(blocks):
            with procs.RssSampler(a.pid) as sampler:  # replica A alone carries every upload of this block
                runs["one"].append(upload(one.url, per_block))
            peak = max(peak, sampler.peak)
            runs["two"].append(upload(two.url, per_block))
        gate_cpu = procs.cpu_seconds(a.pid) + procs.cpu_seconds(b.pid) - cpu_before
        spread = two.upstreams()
        replicas = {"A": spread[a.url.removeprefix("http://")], "B": spread[b.url.removeprefix("http://")]}
        pids = {"A": a.pid, "B": b.pid}
    # Leaving the block stopped both replicas: their decision logs are drained into Postgres.
    return {
        "rate": {k: steady_rate([r["done"] for r in rs]) for k, rs in runs.items()},
        "p50": {k: statistics.median(x for r in rs for x in r["latencies"]) * 1000 for k, rs in runs.items()},
        "answered": answered,
        "gate_cpu_ms": gate_cpu / (2 * blocks * per_block) * 1000,
        "memory_per_upload": (peak - idle) / c,
        "replicas": replicas,
        "pids": pids,
    }


def _hashing_cpu_ms(report: Report, quick: bool) -> tuple[dict[tuple[str, str], float], str]:
    """CPU ms to hash one upload, by (size, format) of SIZING_SIZES: the hashing section's table when it
    ran in this run, else measured here the same way (``hash_bytes``, process CPU time, median over
    photos)."""
    for table in report.tables:
        if table.title == HASHING_TITLE:
            found: dict[tuple[str, str], float] = {}
            for r in table.rows:
                size, fmt = str(r["upload"]).split(" ", 1)
                if size in SIZING_SIZES:
                    found[size, fmt] = float(r["gate CPU ms"])
            if found:
                return found, "the hashing section of this run ('gate CPU ms')"
    keep_heap_warm()  # as a hashing worker allocates (bench/hashing.py)
    out: dict[tuple[str, str], float] = {}
    for size in SIZING_SIZES:
        for fmt in corpus.FORMATS:
            times = []
            for s in corpus.corpus(1 if quick else 3, (size,), (fmt,)):
                hash_bytes(s.body, HashOptions())
                start = time.process_time()
                for _ in range(3):
                    hash_bytes(s.body, HashOptions())
                times.append((time.process_time() - start) / 3 * 1000)
            out[size, corpus.FORMAT_NAMES[fmt]] = statistics.median(times)
    return (
        out,
        "measured here: `hash_bytes` on the corpus's photos, process CPU time; the hashing section did not run",
    )


def _report(
    report: Report, m: dict[str, Any], log: dict[str, int], writes: Writes, c: int, quick: bool
) -> None:
    one, two = m["rate"]["one"], m["rate"]["two"]
    uploads = sum(m["answered"].values())
    answers = ", ".join(f"{n}× {s}" for s, n in sorted(m["answered"].items()))
    table = report.table(
        "Scale-out: two gate replicas on one Postgres behind nginx vs one replica behind nginx",
        ["set-up", "uploads/s", "p50 ms", "vs one replica"],
        note=f"12 MP JPEG uploads, concurrency {c}, alternating blocks, nginx-light (one worker) balancing "
        f"round robin. This machine has {os.cpu_count()} cores shared by the load generator, nginx, the "
        "upstream, Postgres and both replicas (each with a hashing worker per core): when one replica "
        "already keeps every core busy hashing, a second cannot add throughput here. The ratio shows "
        "what a second replica costs or gains on the same cores, not the linear scaling that separate "
        "machines (or more cores) give.",
    )
    for name, key in (("one replica", "one"), ("two replicas", "two")):
        table.add(
            **{
                "set-up": name,
                "uploads/s": m["rate"][key],
                "p50 ms": m["p50"][key],
                "vs one replica": f"{m['rate'][key] / one:.2f}×",
            }
        )
    consistent = (
        log["rows"] == uploads == log["ids"] == log["digests"]
        and m["answered"].get(200, 0) == uploads
        and all(m["replicas"].values())
    )
    check = report.table(
        "Scale-out: one decision log across both replicas",
        [
            "uploads answered",
            "answers",
            "rows in Postgres",
            "distinct ids",
            "distinct SHA-256",
            "answered by A / B (nginx log)",
            "replica pids",
        ],
        note="The decisions table records no replica id or pid; which replica answered is read from "
        "nginx's access log ($upstream_addr) for the two-replica blocks. Every upload's bytes are unique, "
        "so distinct SHA-256 == rows means no upload was logged twice.",
    )
    check.add(
        **{
            "uploads answered": uploads,
            "answers": answers,
            "rows in Postgres": log["rows"],
            "distinct ids": log["ids"],
            "distinct SHA-256": log["digests"],
            "answered by A / B (nginx log)": f"{m['replicas']['A']} / {m['replicas']['B']}",
            "replica pids": f"{m['pids']['A']} / {m['pids']['B']}",
        }
    )
    report.target(
        "two replicas on one Postgres behind nginx: throughput",
        "linear (2×) where cores allow",
        f"{two / one:.2f}× one replica on {os.cpu_count()} shared cores (linear scaling cannot show "
        "beyond the cores)",
        None,
        issue=18,
    )
    report.target(
        "two replicas: one consistent decision log",
        "rows == uploads answered, no duplicates, both replicas served",
        f"{log['rows']} rows, {uploads} answered, {log['digests']} distinct; A/B "
        f"{m['replicas']['A']}/{m['replicas']['B']}",
        consistent,
        issue=18,
    )
    _sizing(report, m, writes, uploads, quick)


def _sizing(report: Report, m: dict[str, Any], writes: Writes, uploads: int, quick: bool) -> Table:
    hashing, source = _hashing_cpu_ms(report, quick)
    gate_ms = m["gate_cpu_ms"]
    per_table = ", ".join(f"{k} {v / uploads:.2f}" for k, v in sorted(writes.rows.items()) if v)
    table = report.table(
        "Sizing (per replica, from this run)",
        ["figure", "value", "where it comes from"],
        note="uploads/s per core = 1000 / (hashing CPU ms + the gate process's CPU ms per upload), by "
        "size and format. The gate-process share (HTTP both ways, the body to a worker, matching, the "
        "decision log) is measured on 12 MP JPEG uploads and applied to every row (for smaller bodies it "
        "is an upper bound); Postgres's own CPU is not included.",
    )
    for (size, fmt), ms in sorted(hashing.items(), key=lambda item: SIZING_SIZES.index(item[0][0])):
        table.add(
            figure=f"{PER_CORE}{corpus.size_name(size)} {fmt}",
            value=f"{1000 / (ms + gate_ms):.0f}",
            **{
                "where it comes from": f"hashing {ms:.1f} ms, {source}; + gate process {gate_ms:.1f} ms "
                "(replicas' CPU over the scale-out blocks, /proc)"
            },
        )
    table.add(
        figure="memory per concurrent 12 MP upload",
        value=f"{m['memory_per_upload'] / 2**20:.1f} MB",
        **{
            "where it comes from": "replica A's peak RSS (with its hashing workers) during the one-replica "
            "blocks, minus its RSS before its first upload, over the concurrency"
        },
    )
    table.add(
        figure="Postgres rows written per upload",
        value=f"{sum(writes.rows.values()) / uploads:.2f}",
        **{
            "where it comes from": f"pg_stat_user_tables (inserted + updated + deleted) over the run, "
            f"by table: {per_table or 'none'}"
        },
    )
    table.add(
        figure="Postgres transactions per upload",
        value=f"{writes.commits / uploads:.2f}",
        **{
            "where it comes from": "pg_stat_database.xact_commit over the run (the decision log batches rows "
            "under load; readiness checks and this benchmark's own queries are counted too)"
        },
    )
    return table
