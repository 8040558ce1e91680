"""The load generator, in its own process so that its CPU is not the gate's (or the upstream's).

``python -m bench.load JSON`` runs one job described by a JSON object and prints the result as JSON:
- ``{"kind": "upload", "url": …, "files": [paths], "concurrency": C, "total": N}``: N uploadBlob POSTs,
  C in flight, bodies read from the files once (round robin), each made unique by 12 trailing bytes (a per-job random salt and a serial: the gate
  reuses the verdict of bytes it has already judged, which would flatter it);
- ``{"kind": "get", "url": …, "concurrency": C, "total": N, "path": P}``: small GETs of P (default
  ``/xrpc/_health``);
- ``{"kind": "download", "url": …, "total": N}``: N big downloads one after another;
- ``{"kind": "ws", "url": …, "count": K, "size": B, "total": N}``: N rounds of K frames of B bytes.
The result holds per-request latencies (seconds), the wall time and the status codes seen; uploads
and GETs also give each one's completion time from the job's start (``done``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"


async def _uploads(job: dict[str, Any], session: aiohttp.ClientSession) -> dict[str, Any]:
    bodies = [Path(p).read_bytes() for p in job["files"]]  # noqa: ASYNC240  before any request
    media = job.get("media_type", "application/octet-stream")
    cycle = itertools.cycle(bodies)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for _ in range(job["total"]):
        queue.put_nowait(next(cycle))

    serial = itertools.count()
    salt = os.urandom(4)
    done: list[float] = []  # completion times from the start: bench.report.steady_rate
    start_all = [0.0]

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            if job.get("unique", True) and len(body) < 16 * 1024 * 1024:
                # Bytes after the image's end marker: every upload is new to the gate (no verdict-cache
                # hit, every matcher runs), the picture and its PDQ hash are the same.
                body = body + salt + next(serial).to_bytes(8, "big")
            start = time.perf_counter()
            async with session.post(
                job["url"] + UPLOAD,
                data=body,
                headers={"Authorization": "Bearer bench", "Content-Type": media},
            ) as resp:
                await resp.read()
                statuses[resp.status] += 1
            latencies.append(time.perf_counter() - start)
            done.append(time.perf_counter() - start_all[0])
            if job.get("gap"):  # paced uploads: each client waits this long before its next one
                await asyncio.sleep(job["gap"])

    start_all[0] = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(job["concurrency"])))
    wall = time.perf_counter() - start_all[0]
    return {"latencies": latencies, "wall": wall, "statuses": dict(statuses), "done": done}


async def _gets(job: dict[str, Any], session: aiohttp.ClientSession) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    remaining = [job["total"]]
    path = job.get("path", "/xrpc/_health")
    done: list[float] = []
    start_all = time.perf_counter()

    async def worker() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            start = time.perf_counter()
            async with session.get(job["url"] + path) as resp:
                await resp.read()
                statuses[resp.status] += 1
            latencies.append(time.perf_counter() - start)
            done.append(time.perf_counter() - start_all)

    await asyncio.gather(*(worker() for _ in range(job["concurrency"])))
    wall = time.perf_counter() - start_all
    return {"latencies": latencies, "wall": wall, "statuses": dict(statuses), "done": done}


async def _downloads(job: dict[str, Any], session: aiohttp.ClientSession) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    received = 0
    start_all = time.perf_counter()
    for _ in range(job["total"]):
        start = time.perf_counter()
        async with session.get(job["url"] + f"/download?mb={job['mb']}") as resp:
            async for chunk in resp.content.iter_any():
                received += len(chunk)
            statuses[resp.status] += 1
        latencies.append(time.perf_counter() - start)
    wall = time.perf_counter() - start_all
    return {"latencies": latencies, "wall": wall, "statuses": dict(statuses), "bytes": received}


async def _websocket(job: dict[str, Any], session: aiohttp.ClientSession) -> dict[str, Any]:
    latencies: list[float] = []
    start_all = time.perf_counter()
    async with session.ws_connect(job["url"].replace("http", "ws", 1) + "/ws", max_msg_size=0) as ws:
        for _ in range(job["total"]):
            start = time.perf_counter()
            await ws.send_str(f"{job['count']} {job['size']}")
            frames = 0
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    break
                frames += 1
            assert frames == job["count"], frames
            latencies.append(time.perf_counter() - start)
    return {"latencies": latencies, "wall": time.perf_counter() - start_all, "statuses": {}}


async def run(job: dict[str, Any]) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=600), auto_decompress=False
    ) as session:
        kind = job["kind"]
        if kind == "upload":
            return await _uploads(job, session)
        if kind == "get":
            return await _gets(job, session)
        if kind == "download":
            return await _downloads(job, session)
        if kind == "ws":
            return await _websocket(job, session)
    raise ValueError(f"unknown job kind {kind!r}")


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.loads(sys.argv[1])))))
