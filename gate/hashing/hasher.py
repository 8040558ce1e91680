"""The hashing stage: ``hash_bytes`` (pure, synchronous) and ``Hasher`` (the same, off the event loop).

Where the CPU work runs: every body goes whole to a worker process (gate/hashing/pool.py), which
offers it to every image decoder and PDQs what they read, with the exact digests in a side thread
(and an animation's next frame decoded in another while the last is hashed: gate/hashing/worker.py);
``pdqhash.compute`` holds the GIL, so PDQ in the gate's threads would serialise on one core and stall
the event loop. Bodies that sniff as something else go too: some decoders (TGA, IM, PCD...) have no
magic number to rule them out by, and a JPEG can sniff as MP4 (issue 12), so only a decoder can say a
body is not an image, and decoders run only in workers. A decoder that crashes or hangs its worker
costs that upload an "unhashable" verdict, not the gate.

Measured with ``python -m bench.hashing_pool 20`` (2 workers; idle 2-core machine, 2026-11-24), ratios
to serial ``hash_bytes`` in the same run, for a 12 MP JPEG (0.9 MB) / with grain (1.9 MB) / 1024 px:
- latency at c=1: worker sockets 1.08x / 1.01x / 1.12x; the previous ``ProcessPoolExecutor`` design
  1.10x / 1.07x / 1.08x; threads 1.02x / 0.98x / 0.98x.
- throughput at c=8: worker sockets 1.74x / 1.79x / 1.70x; executor 1.71x / 1.76x / 1.63x; threads
  1.66x / 1.65x / 1.43x.
- event-loop lag p99 while hashing (the delay every other request through the gate would see):
  1.9-4.7 ms with worker processes, 5.7-10.2 ms with threads.
Through the whole gate (``python -m bench --only gate``) the worker sockets cut the gate process's CPU
from ~5.5 to ~2.9 ms per 12 MP upload and the added latency at c=1 by ~3 ms: the executor's manager
and feeder threads fought the event loop for the GIL. The benchmark builds the other designs itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

from gate.hashing.digests import Digests, digests
from gate.hashing.image import ImageHashes, hash_image
from gate.hashing.options import HashOptions
from gate.hashing.pool import WorkerDied, WorkerPool
from gate.hashing.sniff import OCTET_STREAM, sniff
from gate.proxy.budget import MemoryBudget
from gate.types import Hashes, Unhashable


def hash_bytes(body: bytes, options: HashOptions, *, full_resolution: bool = False) -> Hashes:
    """Digests, every media type the bytes satisfy and, for what image decoders read, PDQ of every frame
    (+ pHash / dHash of the first on request).

    Pure and synchronous: runs in the caller's thread. Bad images never raise; they come back with
    ``unhashable`` set. ``full_resolution`` skips the fast path and hashes every pixel, as HMA does.
    """
    sniffed = sniff(body)
    image = hash_image(body, sniffed, options, reduce=not full_resolution)
    return combine(digests(body), sniffed, image)


def combine(found: Digests, sniffed: str, image: ImageHashes | None) -> Hashes:
    image = image if image is not None else ImageHashes()  # its defaults are Hashes' "not an image"
    # What decoders read first (the sniffed type's own decoders are tried first), then the magic bytes.
    types = tuple(dict.fromkeys((*image.media_types, sniffed)))
    if len(types) > 1:
        types = tuple(t for t in types if t != OCTET_STREAM)
    return Hashes(
        sha256=found.sha256,
        md5=found.md5,
        sha1=found.sha1,
        cid=found.cid,
        size=found.size,
        media_type=types[0],
        media_types=types,
        frames=image.frames,
        pdq=image.pdq,
        phash=image.phash,
        dhash=image.dhash,
        unhashable=image.unhashable,
        unhashable_detail=image.unhashable_detail,
        width=image.width,
        height=image.height,
    )


class Hasher:
    """Hashes bodies off the event loop.

    ``workers`` sizes the pool of worker processes (0: one per core, the choice of
    bench/hashing_pool.py). ``decode_timeout`` bounds the seconds one image may take in a worker.
    ``budget``, where bodies are held under one (the gate's uploads and API): the worker's copy of each
    body is reserved from it too, from before it is sent until the answer is back (503 when it cannot
    be had: ``MemoryBudget.worker_copy``).
    """

    def __init__(
        self, workers: int = 0, *, decode_timeout: float = 20.0, budget: MemoryBudget | None = None
    ) -> None:
        self._workers = workers if workers > 0 else (os.cpu_count() or 1)
        self._decode_timeout = decode_timeout
        self._budget = budget
        # The digests of a body whose worker died, still owed.
        self._threads = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="gate-hash")
        self._processes = WorkerPool(self._workers, decode_timeout)
        self._closed = False

    @property
    def workers(self) -> int:
        return self._workers

    def worker_pids(self) -> list[int]:
        """Process ids of the hashing workers (empty before the first upload)."""
        return self._processes.pids()

    async def hash(self, body: bytes, options: HashOptions) -> Hashes:
        if self._closed:
            raise RuntimeError("Hasher is closed")
        loop = asyncio.get_running_loop()
        media_type = sniff(body)  # reads the first few KB only: cheap enough for the loop
        try:
            async with self._worker_copy(len(body)):
                found, image = await self._processes.run(body, media_type, options)
        except WorkerDied:
            if self._closed:  # the worker was stopped by close(), not by this body
                raise RuntimeError("Hasher is closed") from None
            # A decoder crash, the OOM killer, or the worker's own deadline (a body that takes longer
            # than decode_timeout to decode, e.g. a progressive-JPEG scan bomb). Only this upload's
            # worker is lost; the exact digests are still owed, so take them here.
            image = ImageHashes(
                unhashable=Unhashable.CORRUPT,
                unhashable_detail=f"the image decoder crashed or ran longer than {self._decode_timeout:g} s",
            )
            found = await loop.run_in_executor(self._threads, digests, body)
        return combine(found, media_type, image)

    def _worker_copy(self, n: int) -> contextlib.AbstractAsyncContextManager[None]:
        return self._budget.worker_copy(n) if self._budget is not None else contextlib.nullcontext()

    def start(self) -> None:
        """Start the worker processes in the background (the first upload need not pay for it)."""
        self._processes.start()

    async def warm_up(self) -> None:
        """Start the worker processes and wait until every one is ready."""
        await self._processes.start()

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._threads.shutdown, wait=True, cancel_futures=True)
        await self._processes.close()
