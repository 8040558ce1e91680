"""A hashing worker process: the far end of one socket, hashing one upload body at a time.

Why not ``ProcessPoolExecutor``: its round trip runs through a queue-management thread and a feeder
thread in the gate, whose wake-ups and GIL hand-offs cost the event loop 2-4 ms per upload at
concurrency 1 (bench/hashing_pool.py). Here the event loop writes the body to this process's socket
itself and reads one short answer back; no thread of the gate's takes part.

The trust boundary runs through this socket. This process parses hostile bytes with C decoders, so
it is treated as possibly compromised: it answers in JSON, which the gate parses as data
(``pool.decode_answer``), never with pickle, which would let a subverted decoder run code in the gate.

Threads: one upload uses up to three here, so up to two cores at once when the host has them free —
this one (receives the body, PDQ-hashes each frame, answers), ``gate-digest`` (the exact digests, from
the start of the job) and, for a body that may hold several pictures, ``gate-frames`` (decodes the next
frame while this one hashes the last: gate/hashing/read_ahead.py; started and joined within the job).
libvips and libwebp are told to use one thread. The CPU per upload is about one thread's (the
hand-overs add 2-6 %, docs/performance.md); only the latency falls, and only while a core is idle. The
pool still sizes the parallelism at one worker per core: under full load the extra threads share the
cores the workers already keep busy. The deadline's SIGALRM ends the process, every thread with it.

Wire format (both directions, big-endian): a job is ``HEADER`` (meta length, body length), the meta
as JSON, then the body's bytes; an answer is ``ANSWER`` (length) and the answer as JSON.
"""

from __future__ import annotations

import ctypes
import json
import signal
import socket
import struct
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from PIL import Image

from gate.hashing import pdq_native, vips, webp
from gate.hashing.digests import digests
from gate.hashing.formats import REFUSED
from gate.hashing.image import hash_image
from gate.hashing.options import HashOptions

HEADER = struct.Struct("!IQ")
ANSWER = struct.Struct("!I")

# glibc's mallopt(3) parameter numbers.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def serve(sock: socket.socket) -> None:
    """Answer jobs until the gate closes its end (or exits: the socket closes with it)."""
    prepare_process()
    # The digests run beside the decode: hashlib and Pillow's decoders release the GIL.
    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-digest")
    with sock:
        while (head := _recv_exactly(sock, HEADER.size)) is not None:
            meta_len, body_len = HEADER.unpack(head)
            raw_meta = _recv_exactly(sock, meta_len)
            if raw_meta is None:
                return
            meta = json.loads(raw_meta)
            body = _recv_exactly(sock, body_len)
            if body is None:
                return
            digested = side.submit(digests, body)
            options = HashOptions(**meta["options"])
            # Pillow's bomb limit is a module global; this process is ours, so set it per job.
            Image.MAX_IMAGE_PIXELS = options.max_image_pixels
            # SIGALRM's default action ends this process even inside a C decoder that never returns
            # to Python: that is the deadline. The gate sees the socket close and answers for it.
            signal.setitimer(signal.ITIMER_REAL, meta["timeout"])
            try:
                # Frames read ahead: a worker's spare threads are what make an animation's latency
                # about its decoder's time (the module's docstring counts them).
                image = hash_image(body, meta["media_type"], options, read_ahead=True)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            answer = json.dumps({"digests": asdict(digested.result()), "image": asdict(image)}).encode()
            # Dropped before the answer goes: the gate counts this copy in its memory budget only until
            # it has the answer (gate/hashing/hasher.py), so an idle worker must not keep the last body.
            del body, digested, image
            sock.sendall(ANSWER.pack(len(answer)) + answer)


def prepare_process() -> None:
    """Signals, warnings and allocator settings of a hashing process (also used by bench/)."""
    # The gate applies its own pixel limit (HashOptions.max_image_pixels) from the header; Pillow's
    # warning for the same condition would only be noise in this process.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    # Ctrl-C in a terminal reaches the whole process group; the gate decides when workers end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Defence in depth: the gate names the formats it opens (gate/hashing/formats.py), but a plugin
    # that opens embedded data with every registered format must not find Ghostscript there either.
    Image.init()
    for name in REFUSED:
        Image.OPEN.pop(name, None)
    keep_heap_warm()
    pdq_native.available()  # proves the native PDQ entry points now, not on this worker's first upload
    # libvips and libwebp load here, after the fork (the forkserver never imports libvips: no libvips
    # thread is forked), and before the first large PNG or WebP pays for them.
    vips.available()
    webp.available()


def keep_heap_warm() -> None:
    """Stop glibc handing every decode buffer back to the kernel.

    A fresh process's malloc serves blocks over 128 KB with mmap and trims the heap top eagerly, so
    every upload re-faults its decode buffers: ~1,400 page faults and ~4 ms of system time per 12 MP
    JPEG, 20 ms in the worker instead of 16 (getrusage around hash_image). Fixed thresholds keep
    blocks up to 32 MB on the heap and up to 64 MB of free heap mapped; peak RSS is unchanged.
    (bench/hashing.py measures in a process set up the same way: what a worker pays.)
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)
        libc.mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc (e.g. musl): its allocator keeps its defaults
        pass


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    """``n`` bytes, received straight into the one ``bytes`` object the decoders read (Pillow's BytesIO
    shares ``bytes``; it would copy a ``bytearray``): a body is held once in this process, never twice
    (a buffer and its ``bytes()`` copy were two bodies at the peak of every job). None at end of input."""
    first = sock.recv(n, socket.MSG_WAITALL) if n else b""
    if len(first) == n:
        return first  # recv allocated exactly n bytes and filled them: no resize, no copy
    if not first:
        return None
    # Cut short (a signal, or a kernel limit on one read): the rest joins it, once, in a fresh buffer.
    got = len(first)
    buf = bytearray(n)
    buf[:got] = first
    del first
    return bytes(buf) if _recv_into(sock, memoryview(buf)[got:]) else None


def _recv_into(sock: socket.socket, buf: bytearray | memoryview) -> bool:
    view = memoryview(buf)
    got = 0
    while got < len(buf):
        n = sock.recv_into(view[got:])
        if n == 0:
            return False
        got += n
    return True


def job_meta(media_type: str, options: HashOptions, timeout: float) -> dict[str, Any]:
    return {"media_type": media_type, "options": asdict(options), "timeout": timeout}
