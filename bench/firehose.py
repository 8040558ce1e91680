"""Firehose throughput: ``upload-gate watch`` (its ``run_watch``, the code the command runs) reading a
generated firehose replayed at full speed — commits/s and images/s judged — beside pure hashing of the
same images with the gate's Hasher on the same cores, in the same run.

The firehose is a real websocket on a real port, with a PLC directory and a PDS answering getBlob beside
it (``tests.support.firehose``); decisions, the cursor and seen blobs go to an embedded Postgres. Every
image is distinct (so every one is fetched and hashed: nothing is saved by the seen-CID dedupe), 1024 px
JPEGs of the corpus photographs, one per post, and each post among ``NOISE`` commits without blobs
(likes), roughly the mix of the network's firehose. The ratio images/s ÷ pure hashing images/s is what
the watcher's reading, decoding, fetching and recording cost on top. A second stream of blob-less
commits only measures the reading and decoding ceiling (commits/s with nothing to judge).

Images/s is a steady rate (``bench.report.steady_rate``: between the 10th and 90th percentile
completion), as every other throughput the benchmark compares; pure hashing is measured before and after
the watcher and the faster kept, so a neighbour's load during one of them does not flatter the ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from prometheus_client import Counter

from bench.corpus import encode, photos
from bench.endtoend import _pure_hashing
from bench.report import Report, steady_rate
from gate import metrics
from gate.firehose.command import run_watch
from gate.settings import Settings
from gate.store.embedded import EmbeddedPostgres
from tests.support import firehose as fh

NOISE = 4  # blob-less commits per commit with an image
AUTHORS = 50
TIMEOUT = 600.0  # seconds without progress before the run is called stuck
POLICY = """
on_unhashable = "forward"
on_unscannable = "forward"
on_matcher_error = "forward"
on_log_failure = "forward"

[[rules]]
name = "blocklist"
source = "local"
banks = ["blocklist"]
signal_types = ["pdq", "sha256"]
max_distance = 31
action = "reject"
"""


def images(count: int) -> list[bytes]:
    """``count`` distinct 1024×768 JPEGs: the corpus photographs, each cropped a little differently."""
    sources = [im for _, im in photos()]
    out = []
    for i in range(count):
        im = sources[i % len(sources)]
        dx = (i // len(sources)) % 97
        box = (dx, 0, dx + im.width * 3 // 4, im.width * 9 // 16)
        out.append(encode(im.crop(box).resize((1024, 768), Image.Resampling.BILINEAR), "JPEG"))
    return out


def _like(seq: int, author: str) -> bytes:
    like = {
        "$type": "app.bsky.feed.like",
        "subject": {"uri": f"at://{author}/app.bsky.feed.post/p{seq}", "cid": "bafy"},
        "createdAt": "2026-12-05T00:00:00.000Z",
    }
    return fh.commit(seq, author, {f"app.bsky.feed.like/l{seq}": like})


def stream(bodies: list[bytes], noise: int = NOISE) -> fh.Network:
    """A firehose of one post per body (its image) after every ``noise`` likes, by ``AUTHORS`` accounts
    the PLC directory knows, whose PDS serves every image."""
    authors = [f"did:plc:bench{a:06d}" for a in range(AUTHORS)]
    network = fh.Network(dids=set(authors))
    seq = 0
    for i, body in enumerate(bodies):
        author = authors[i % AUTHORS]
        for _ in range(noise):
            seq += 1
            network.frames.append(_like(seq, author))
        seq += 1
        network.frames.append(
            fh.commit(seq, author, {f"app.bsky.feed.post/p{seq}": fh.post(body, "image/jpeg")})
        )
        network.blobs[fh.blob_cid(body)] = body
    return network


def likes(count: int) -> fh.Network:
    authors = [f"did:plc:bench{a:06d}" for a in range(AUTHORS)]
    return fh.Network(frames=[_like(seq, authors[seq % AUTHORS]) for seq in range(1, count + 1)])


def _sample(counter: Counter, **labels: str) -> float:
    """One counter's value, read from that counter alone. Not ``REGISTRY.get_sample_value``: it collects
    every metric of the process (each histogram's buckets included) to find one, and the benchmark asks
    every 5 ms, on the watcher's own event loop — in profiles that probe cost the process as much CPU as
    the watcher's whole work per image, all of it taken from the hashing workers' two cores."""
    for family in counter.collect():
        for sample in family.samples:
            if sample.name == family.name + "_total" and sample.labels == labels:
                return sample.value
    return 0.0


def _judged() -> float:
    return _sample(metrics.FIREHOSE_BLOBS, outcome="judged")


def _failed() -> float:
    return _sample(metrics.FIREHOSE_BLOBS, outcome="failed")


def _commits() -> float:
    return _sample(metrics.FIREHOSE_EVENTS, kind="commit")


def _settings(work: Path, dsn: str, url: str) -> Settings:
    (work / "banks").mkdir(exist_ok=True)
    (work / "banks" / "blocklist.csv").write_text("sha256," + "0" * 64 + ",never\n")
    (work / "policy.toml").write_text(POLICY)
    return Settings.from_env(
        {
            "GATE_POLICY": str(work / "policy.toml"),
            "GATE_BANKS_DIR": str(work / "banks"),
            "GATE_DATA_DIR": str(work / "var"),
            "DATABASE_URL": dsn,
            "GATE_UPSTREAM": url,  # allowed as an http PDS: the generated network's getBlob
            "GATE_PLC_URL": url + "/plc",
            "GATE_WATCH_METRICS_LISTEN": "",
            "GATE_LOG_LEVEL": "WARNING",
        }
    )


async def _watch(
    network: fh.Network, work: Path, dsn: str, counter: Callable[[], float], total: int
) -> list[float]:
    """Run the watcher on ``network`` until ``counter`` has grown by ``total``; the time (from the
    connection) at which each unit was counted."""
    async with contextlib.aclosing(fh.running(network)) as it:
        net = await it.__anext__()
        stop = asyncio.Event()
        base, failed = counter(), _failed()
        task = asyncio.create_task(
            run_watch(_settings(work, dsn, net.url), net.url.replace("http", "ws"), True, stop)
        )
        done: list[float] = []
        start: float | None = None
        last_progress = time.monotonic()
        try:
            while len(done) < total:
                if task.done():
                    task.result()
                    raise RuntimeError("the watcher stopped before the firehose was judged")
                if _failed() > failed:
                    raise RuntimeError("the watcher failed to judge a blob: see its log")
                if start is None and net.connected.is_set():
                    start = time.perf_counter()
                now = counter() - base
                if now > len(done):
                    at = time.perf_counter() - (start or time.perf_counter())
                    done += [at] * int(now - len(done))
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > TIMEOUT:
                    raise RuntimeError(f"no progress for {TIMEOUT:.0f} s ({len(done)} of {total})")
                await asyncio.sleep(0.005)
        finally:
            stop.set()
            await task
    return done


async def _run(report: Report, quick: bool) -> None:
    count = 40 if quick else 400
    only_likes = 5_000 if quick else 50_000
    bodies = images(count)
    hashing_before, _ = await _pure_hashing(bodies, count, 8)
    with tempfile.TemporaryDirectory(prefix="upload-gate-bench-fh-") as tmp:
        work = Path(tmp)
        embedded = EmbeddedPostgres(work / "pg")
        dsn = await asyncio.to_thread(embedded.start)
        try:
            judged = await _watch(stream(bodies), work, dsn, _judged, count)
            read = await _watch(likes(only_likes), work, dsn, _commits, only_likes)
        finally:
            await asyncio.to_thread(embedded.stop)
    hashing_after, _ = await _pure_hashing(bodies, count, 8)
    hashing_rate = max(hashing_before, hashing_after)
    images_rate = steady_rate([judged])
    commits_rate = images_rate * (NOISE + 1)  # the stream's fixed mix: one post in every NOISE + 1 commits
    # Whole run, from the connection to the last commit read: decoding comes in bursts between the
    # samples of the counter (one event loop), too coarse for percentiles.
    likes_rate = only_likes / read[-1]
    table = report.table(
        "Firehose: upload-gate watch on a generated firehose replayed at full speed",
        ["stream", "commits", "images", "commits/s", "images/s", "vs pure hashing"],
        note=f"1024 px JPEGs, one per post after every {NOISE} likes, {AUTHORS} authors; every image "
        "distinct (fetched and hashed); decisions, cursor and seen blobs in an embedded Postgres; steady "
        "rates (10th–90th percentile completion); commits/s of the mixed stream = images/s × "
        f"{NOISE + 1}; likes only: from the connection to the last commit read. Pure hashing: the gate's Hasher on every core, 8 at a time, the same images, "
        "before and after the watcher in the same run (the faster kept).",
    )
    table.add(
        stream=f"posts with images among likes (1 in {NOISE + 1})",
        commits=count * (NOISE + 1),
        images=count,
        **{"commits/s": round(commits_rate, 1), "images/s": round(images_rate, 1)},
        **{"vs pure hashing": f"{images_rate / hashing_rate:.2f}×"},
    )
    table.add(
        stream="likes only (reading and decoding, nothing to judge)",
        commits=only_likes,
        images=0,
        **{"commits/s": round(likes_rate, 1), "images/s": "", "vs pure hashing": ""},
    )
    table.add(
        stream="pure hashing (Hasher only)",
        commits="",
        images=count,
        **{"commits/s": "", "images/s": round(hashing_rate, 1), "vs pure hashing": "1.00×"},
    )
    report.target(
        "firehose throughput (issue 16)",
        "images/s judged from the firehose ≥ 50 % of pure hashing",
        f"{images_rate:.1f} images/s ({commits_rate:.0f} commits/s) vs {hashing_rate:.1f} hashing "
        f"({images_rate / hashing_rate:.0%})",
        images_rate * 2 >= hashing_rate,
    )


def run(report: Report, quick: bool) -> None:
    asyncio.run(_run(report, quick))
