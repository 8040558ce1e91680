"""The gate's side of the hashing workers: a fixed set of processes, one job each at a time.

The event loop sends a job straight down an idle worker's socket (``loop.sock_sendall`` on a view of
the body: no pickling, no copy into a queue, no helper thread) and reads the answer back. A worker
that dies (decoder crash, OOM kill, its own SIGALRM deadline) closes its socket: only the job it
held fails (exactly the culprit; the others run in other processes) and a fresh worker replaces it.

(Over 300 lines on purpose: the worker lifecycle — start, hand-off, death, replacement, close — must be
read as one state machine.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import signal
import socket
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

from gate import metrics
from gate.errors import Unavailable
from gate.hashing.digests import Digests
from gate.hashing.image import ImageHashes
from gate.hashing.options import HashOptions
from gate.hashing.worker import ANSWER, HEADER, job_meta, serve
from gate.types import PdqHash, Unhashable, Variant

log = logging.getLogger(__name__)

# An answer holds at most 9 PDQ hashes a frame (stored, displayed and 7 dihedral), each well under
# 256 bytes of JSON, and a few hundred bytes besides; anything longer is not a worker's.
ANSWER_BASE = 64 * 1024
ANSWER_PER_FRAME = 9 * 256


def max_answer(options: HashOptions) -> int:
    return ANSWER_BASE + options.max_frames * ANSWER_PER_FRAME


# Beyond the worker's own deadline (decode_timeout, enforced inside it by SIGALRM), how long the
# gate waits before it kills the worker itself: the body's transfer and the digests are not covered
# by the worker's timer.
GRACE_SECONDS = 10.0
RESPAWN_DELAY = 1.0


class WorkerDied(Unavailable):
    """The worker holding a job ended, or answered something that is not an answer."""


class Malformed(WorkerDied):
    """The worker answered something that is not an answer (it is killed: it may be subverted)."""


@dataclass(slots=True, eq=False)  # hashed by identity: kept in a set
class _Worker:
    process: BaseProcess
    sock: socket.socket


class WorkerPool:
    def __init__(self, size: int, decode_timeout: float) -> None:
        self.size = size
        self._decode_timeout = decode_timeout
        self._context = _context()
        self._idle: asyncio.Queue[_Worker | None] | None = None
        self._workers: set[_Worker] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._started: asyncio.Future[list[None]] | None = None
        self._closed = False

    def pids(self) -> list[int]:
        """The worker processes' ids (for operators' tools and tests)."""
        return sorted(w.process.pid for w in self._workers if w.process.pid is not None)

    def start(self) -> asyncio.Future[list[None]]:
        """Start every worker in the background (imports are preloaded in the forkserver, so after
        the first a fork takes milliseconds); the result resolves once all are idle. Uploads that
        arrive first wait for the first worker."""
        if self._started is None:
            # Last in, first out: at low load the same worker takes every upload and stays warm (its
            # caches and heap), ~0.5 ms per 12 MP JPEG against handing uploads round the pool.
            self._idle = asyncio.LifoQueue()
            self._started = asyncio.gather(*(self._background(self._respawn()) for _ in range(self.size)))
        return self._started

    async def run(self, body: bytes, media_type: str, options: HashOptions) -> tuple[Digests, ImageHashes]:
        """Hash one image body in a worker. Raises ``WorkerDied`` if that worker ended meanwhile."""
        if self._closed:
            raise RuntimeError("Hasher is closed")
        self.start()
        assert self._idle is not None
        waiting = time.perf_counter()
        worker = await self._idle.get()
        metrics.HASH_QUEUE_SECONDS.observe(time.perf_counter() - waiting)
        if worker is None:  # closed while waiting: pass the word on to the next waiter
            self._idle.put_nowait(None)
            raise RuntimeError("Hasher is closed")
        # Shielded: if the upload is cancelled, the exchange still finishes, so the worker's stream
        # stays in step and the worker goes back to the idle set.
        exchange = asyncio.ensure_future(self._exchange(worker, body, media_type, options))
        exchange.add_done_callback(_retrieve)  # nobody may be left to await it
        return await asyncio.shield(exchange)

    async def _exchange(
        self, worker: _Worker, body: bytes, media_type: str, options: HashOptions
    ) -> tuple[Digests, ImageHashes]:
        loop = asyncio.get_running_loop()
        meta = json.dumps(job_meta(media_type, options, self._decode_timeout)).encode()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._decode_timeout + GRACE_SECONDS):
                await loop.sock_sendall(worker.sock, HEADER.pack(len(meta), len(body)) + meta)
                await loop.sock_sendall(worker.sock, memoryview(body))
                (length,) = ANSWER.unpack(await _recv_exactly(loop, worker.sock, ANSWER.size))
                if length > max_answer(options):
                    raise Malformed(f"an answer of {length} bytes")
                answer = decode_answer(await _recv_exactly(loop, worker.sock, length))
        except (OSError, TimeoutError, WorkerDied) as exc:
            self._replace(worker, exc)
            raise WorkerDied(str(exc)) from None
        assert self._idle is not None
        self._idle.put_nowait(worker)
        image = answer[1]
        # The type it is judged as (hasher.combine): what a decoder read it as, else the magic bytes.
        judged_as = image.media_types[0] if image.media_types else media_type
        metrics.HASH_SECONDS.labels(judged_as).observe(time.perf_counter() - started)
        if image.frames:
            metrics.HASHED_FRAMES.observe(image.frames)
        return answer

    def _spawn(self) -> _Worker:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = self._context.Process(target=serve, args=(child,), name="gate-hash", daemon=True)
            with _POLLING:
                process.start()
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()  # the worker has its own copy now
        parent.setblocking(False)
        return _Worker(process, parent)

    def _replace(self, worker: _Worker, why: BaseException) -> None:
        # Killed by the gate: past its deadline, or a bad answer. Else it ended on its own: its exit
        # status says how, once it is reaped.
        reason = (
            "timeout"
            if isinstance(why, TimeoutError)
            else "malformed"
            if isinstance(why, Malformed)
            else None
        )
        self._retire(worker, reason)
        if self._closed:
            return
        log.warning(
            "hashing worker %s ended (%s); starting another",
            worker.process.pid,
            str(why) or type(why).__name__,
        )
        self._background(self._respawn())

    def _background(self, work: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _respawn(self) -> None:
        while not self._closed:
            try:
                worker = await asyncio.to_thread(self._spawn)
            except Exception:
                log.exception("could not start a hashing worker; retrying in %g s", RESPAWN_DELAY)
                await asyncio.sleep(RESPAWN_DELAY)
                continue
            if self._closed:  # closed while it started: close() did not see it
                worker.sock.close()
                await asyncio.to_thread(_join_all, [worker])
                return
            self._workers.add(worker)
            assert self._idle is not None
            self._idle.put_nowait(worker)
            return

    def _retire(self, worker: _Worker, reason: str | None) -> None:
        self._workers.discard(worker)
        worker.sock.close()
        if reason is not None and _alive(worker.process):
            worker.process.kill()
        if self._closed:
            if _alive(worker.process):
                worker.process.kill()
            return  # close() reaps every worker itself
        self._background(self._reap(worker, reason))

    async def _reap(self, worker: _Worker, reason: str | None) -> None:
        """Reap a retired worker off the loop (join() blocks until the kernel has released it) and count
        why it ended. One that closed its socket itself is given a moment to finish exiting."""
        process = worker.process
        code = await asyncio.to_thread(_wait_exit, process, 5)
        if code is None:
            process.kill()
            code = await asyncio.to_thread(_wait_exit, process, 5)
        if reason is None:
            reason = {-signal.SIGALRM: "timeout", -signal.SIGKILL: "killed"}.get(code or 0, "crashed")
        metrics.HASH_WORKER_RESTARTS.labels(reason).inc()

    async def close(self) -> None:
        self._closed = True
        if self._idle is not None:
            self._idle.put_nowait(None)  # wakes a waiter, which wakes the next
        # Not cancelled: a worker being started in a thread would be lost with its socket. Each
        # task sees _closed and ends within a second (a start, a reap, or one retry delay).
        await asyncio.gather(*self._tasks, return_exceptions=True)
        workers, self._workers = list(self._workers), set()
        for worker in workers:
            # shutdown, not close: it wakes an exchange still waiting on this socket (its upload gets
            # "closed"), and the worker reads EOF and exits once it is done with its current job.
            with contextlib.suppress(OSError):
                worker.sock.shutdown(socket.SHUT_RDWR)
        await asyncio.to_thread(_join_all, workers)
        for worker in workers:
            worker.sock.close()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _join_all(workers: list[_Worker], timeout: float = 2.0) -> None:
    # Uploads were drained before the hasher is closed; a worker still busy after this grace is
    # decoding for nobody.
    for worker in workers:
        if _wait_exit(worker.process, timeout) is None:
            worker.process.kill()
            _wait_exit(worker.process, None)


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = await loop.sock_recv_into(sock, view[got:])
        if k == 0:
            raise WorkerDied("the worker ended")
        got += k
    return bytes(buf)


def decode_answer(raw: bytes) -> tuple[Digests, ImageHashes]:
    """Parse a worker's JSON answer into values, checking every field's type (it crossed a trust
    boundary: see gate/hashing/worker.py)."""
    try:
        data = json.loads(raw)
        d, i = data["digests"], data["image"]
        found = Digests(
            sha256=_str(d["sha256"]),
            md5=_str(d["md5"]),
            sha1=_str(d["sha1"]),
            cid=_str(d["cid"]),
            size=_int(d["size"]),
        )
        image = ImageHashes(
            pdq=tuple(
                PdqHash(
                    hex=_str(p["hex"]),
                    quality=_int(p["quality"]),
                    transform=_str(p["transform"]),
                    frame=_int(p["frame"]),
                    variant=Variant(p["variant"]),
                )
                for p in _list(i["pdq"])
            ),
            phash=_opt_str(i["phash"]),
            dhash=_opt_str(i["dhash"]),
            unhashable=None if i["unhashable"] is None else Unhashable(i["unhashable"]),
            unhashable_detail=_opt_str(i["unhashable_detail"]),
            width=_opt_int(i["width"]),
            height=_opt_int(i["height"]),
            media_types=tuple(_str(t) for t in _list(i["media_types"])),
            frames=_opt_int(i["frames"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise Malformed(f"a malformed answer ({type(exc).__name__})") from None
    return found, image


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


# multiprocessing reads a child's exit status off a pipe the first time anything polls the child:
# Process.start() polls every child started before it (to forget the finished ones), and is_alive(),
# join() and exitcode poll their own. Two threads polling one child at once can both read; the second
# finds the pipe empty and records 255, so a worker the OOM killer ended was counted as "crashed"
# when a replacement started at the same moment. Every start and every poll is made under this lock;
# waiting for an exit is done outside it, on the process's sentinel (which reads nothing).
_POLLING = threading.Lock()


def _alive(process: BaseProcess) -> bool:
    with _POLLING:
        return process.is_alive()


def _wait_exit(process: BaseProcess, timeout: float | None) -> int | None:
    """Wait up to ``timeout`` seconds for ``process`` to end (blocking: off the event loop); its exit
    code, None while it runs."""
    multiprocessing.connection.wait([process.sentinel], timeout)
    with _POLLING:
        return process.exitcode


def _context() -> ForkServerContext | SpawnContext:
    # Never fork the gate: it has threads, and forking a threaded process can deadlock the child.
    # forkserver imports the hashing stack once and forks workers from that clean process.
    if sys.platform.startswith("linux"):
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(["gate.hashing.worker"])
        return forkserver
    return multiprocessing.get_context("spawn")
