"""The hashing stage: ``hash_bytes`` (pure, synchronous) and ``Hasher`` (the same, off the event loop).

Where the CPU work runs: the exact digests run in a thread (hashlib releases the GIL, and the body
is not copied), while decoding + PDQ runs in a process pool (``pdqhash.compute`` holds the GIL, so
PDQ in threads serialises on one core and stalls the event loop). Only image bodies are sent to the
worker processes; a 100 MB video is digested in a thread and never crosses a process boundary. A
decoder that crashes or hangs its worker costs that upload an "unhashable" verdict, not the gate.

Measured with ``python -m bench.hashing_pool`` (2 workers, concurrency 8) on the 2-core machine
while other test suites kept its load average at 7-13, so absolute numbers are inflated and noisy.
Latest run (load 7), process pool vs thread pool, ratios to serial ``hash_bytes`` in the same run:
- throughput at c=8: 12 MP JPEG 1.33x vs 1.12x; 12 MP JPEG with grain (1.9 MB) 1.29x vs 0.98x;
  1024 px JPEG 0.96x vs 0.99x (earlier runs at load 10+: processes 0.64-1.38x, threads 0.95-1.12x).
- event-loop lag p99 while hashing (the delay every other request through the gate would see):
  4.8-8.1 ms with processes vs 15-24 ms with threads (at load 10+: 15-26 ms vs 25-68 ms).
- latency at c=1 is 10-20 ms worse with processes at this load (cross-process wake-ups on a busy
  scheduler); the body's trip to the worker itself is 0.8 ms (0.1 MB) to 5 ms (1.9 MB).
- "process-all" (digests in the worker too) was no better than digests in a thread.
The process pool wins on what the proxy cares about (loop lag, throughput, isolation), so it is the
default; ``pool="thread"`` remains for comparison. Bodies go to workers through the executor's pipe:
a shared-memory segment would save a copy but is a plaintext file in /dev/shm, which the gate avoids.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Literal

from PIL import Image

from gate.hashing.decode import decodable
from gate.hashing.digests import Digests, digests
from gate.hashing.image import ImageHashes, hash_image
from gate.hashing.options import HashOptions
from gate.hashing.sniff import sniff
from gate.types import Hashes, Unhashable

Pool = Literal["process", "thread"]

# Chosen from bench/hashing_pool.py; the measurements are in the module docstring.
POOL_CHOICE: Pool = "process"


def hash_bytes(body: bytes, options: HashOptions, *, full_resolution: bool = False) -> Hashes:
    """Digests, the sniffed media type and, for images, PDQ (+ pHash / dHash on request).

    Pure and synchronous: runs in the caller's thread. Bad images never raise; they come back with
    ``unhashable`` set. ``full_resolution`` skips the fast path and hashes every pixel, as HMA does.
    """
    media_type = sniff(body)
    image = None
    if decodable(media_type):
        image = hash_image(body, media_type, options, reduce=not full_resolution)
    return combine(digests(body), media_type, image)


def combine(found: Digests, media_type: str, image: ImageHashes | None) -> Hashes:
    if image is None:
        return Hashes(
            sha256=found.sha256,
            md5=found.md5,
            sha1=found.sha1,
            cid=found.cid,
            size=found.size,
            media_type=media_type,
        )
    return Hashes(
        sha256=found.sha256,
        md5=found.md5,
        sha1=found.sha1,
        cid=found.cid,
        size=found.size,
        media_type=media_type,
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

    ``workers`` sizes the pools (0: one per core). ``pool="thread"`` runs the image work in threads
    instead of processes (kept for the benchmark and for hosts where processes are unwelcome; it has
    no decode deadline). ``decode_timeout`` bounds the seconds one image may take in a worker.
    """

    def __init__(self, workers: int = 0, *, pool: Pool = POOL_CHOICE, decode_timeout: float = 20.0) -> None:
        self._workers = workers if workers > 0 else (os.cpu_count() or 1)
        self._pool_kind: Pool = pool
        self._decode_timeout = decode_timeout
        self._threads = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="gate-hash")
        self._processes: ProcessPoolExecutor | None = None
        self._closed = False
        self._lock = threading.Lock()
        if pool == "process":
            # Start the workers now, in the background: the first upload should not wait ~1 s for
            # numpy / Pillow / pdqhash to import.
            self._threads.submit(self._start_workers)

    @property
    def workers(self) -> int:
        return self._workers

    async def hash(self, body: bytes, options: HashOptions) -> Hashes:
        if self._closed:
            raise RuntimeError("Hasher is closed")
        loop = asyncio.get_running_loop()
        media_type = sniff(body)  # reads the first few KB only: cheap enough for the loop
        digested = loop.run_in_executor(self._threads, digests, body)
        if not decodable(media_type):
            return combine(await digested, media_type, None)
        image = await self._hash_image(loop, body, media_type, options)
        return combine(await digested, media_type, image)

    def _start_workers(self) -> None:
        try:
            pool = self._process_pool()
            for future in [pool.submit(_ready) for _ in range(self._workers)]:
                future.result()
        except Exception:  # noqa: S110  closed meanwhile, or a worker failed to start: hash() will retry
            pass

    async def warm_up(self) -> None:
        """Start the worker processes now (imports take ~1 s) rather than on the first upload."""
        if self._pool_kind == "process":
            pool = self._process_pool()
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(self._workers)))

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._threads.shutdown, wait=True, cancel_futures=True)
        with self._lock:
            processes, self._processes = self._processes, None
        if processes is not None:
            await asyncio.to_thread(processes.shutdown, wait=True, cancel_futures=True)

    async def _hash_image(
        self, loop: asyncio.AbstractEventLoop, body: bytes, media_type: str, options: HashOptions
    ) -> ImageHashes:
        if self._pool_kind == "thread":
            return await loop.run_in_executor(self._threads, hash_image, body, media_type, options)
        for _attempt in range(2):
            pool = self._process_pool()
            try:
                return await loop.run_in_executor(
                    pool, _hash_image_in_worker, body, media_type, options, self._decode_timeout
                )
            except BrokenProcessPool:
                # A worker died: a decoder crash, the OOM killer, or its own deadline (a body that
                # takes longer than decode_timeout to decode, e.g. a progressive-JPEG scan bomb).
                # Every upload in flight in that pool lands here, so each gets one more try in a
                # fresh pool; the culprit fails again, the innocent ones do not.
                with self._lock:
                    if self._processes is pool:
                        self._processes = None
                pool.shutdown(wait=False, cancel_futures=True)
        return ImageHashes(
            unhashable=Unhashable.CORRUPT,
            unhashable_detail=f"the image decoder crashed or ran longer than {self._decode_timeout:g} s",
        )

    def _process_pool(self) -> ProcessPoolExecutor:
        with self._lock:  # the event loop and the start-up thread may both ask first
            if self._closed:
                raise RuntimeError("Hasher is closed")
            if self._processes is None:
                self._processes = new_process_pool(self._workers)
            return self._processes


def new_process_pool(workers: int) -> ProcessPoolExecutor:
    # Never fork: the gate has threads (the event loop's executors) and forking a threaded process
    # can deadlock the child. forkserver imports the hashing stack once and forks workers from it.
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["gate.hashing.image"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)


def _init_worker() -> None:
    # The gate applies its own pixel limit (HashOptions.max_image_pixels) from the header; Pillow's
    # warning for the same condition would only be noise in this process.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    # SIGALRM's default action ends the process, even deep inside a C decoder that never returns to
    # Python: that is the per-task deadline (see _hash_image_in_worker).
    signal.signal(signal.SIGALRM, signal.SIG_DFL)


def _ready() -> bool:
    return True


def _hash_image_in_worker(body: bytes, media_type: str, options: HashOptions, timeout: float) -> ImageHashes:
    # Pillow's bomb limit is a module global. This process is ours and single-threaded, so setting it
    # per task is safe here (in the gate's own process, shared by threads, it is never touched).
    Image.MAX_IMAGE_PIXELS = options.max_image_pixels
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return hash_image(body, media_type, options)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
