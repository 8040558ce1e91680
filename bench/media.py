"""What judging every picture costs (issue 12): animations, EXIF orientation, multi-format bytes.

Each row is measured against a baseline in the same run, on one core (this thread's CPU time, median):
- a 100-frame 500 px GIF (every frame distinct: a pan across a photo) against its first frame alone as
  a still GIF, which is what the gate hashed before; and the same 100 frames showing 10 pictures in
  turn, where identical frames are hashed once;
- a 100-frame animated WebP (lossy) against its first frame;
- a 12 MP JPEG tagged ``Orientation = 6`` against the same JPEG untagged (the displayed picture's hash
  is the only extra work: no second decode);
- a 12 MP JPEG that sniffs as MP4 (issue 12's APP1 segment) against the plain JPEG.
The "hashes" column is the number of distinct PDQ hashes: the HMA lookups the upload costs.

For the 100-frame GIF's target (issue 18) the same run also measures what no hashing can go below:
Pillow's decoding and compositing of its frames alone, of which its LZW decoder alone (each frame's
image data decoded to palette indices, nothing composited), and the body's digests (SHA-256, MD5,
SHA-1); and its peer, libvips' GIF loader decoding and compositing the same frames (``gifload``, all
pages). The target itself is the upload's latency: the job timed as a hashing worker runs it, in a
process set up as one (digests in a side thread, the frames read ahead in another), its wall and CPU
time beside the same job with the frames decoded in turn (the code before) and Pillow's decoding
alone, round after round, with a probe of how much of a second core the host gave in those rounds.
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pyvips
from PIL import Image

from bench.corpus import SIZES, photos
from bench.report import Report
from gate.hashing import vips
from gate.hashing.digests import digests
from gate.hashing.hasher import hash_bytes
from gate.hashing.image import hash_image
from gate.hashing.options import HashOptions
from gate.hashing.sniff import sniff
from gate.hashing.worker import prepare_process
from tests.support.media import exif, polyglot, save

OPTIONS = HashOptions()
FRAMES = 100
SIDE = 500


def _cpu_ms(work: Callable[[], object], rounds: int) -> float:
    # The process's CPU time (libvips decodes in a thread of its own; nothing else runs meanwhile).
    times = []
    for _ in range(rounds):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def _pillow_frames(body: bytes) -> None:
    """Every frame decoded and composited by Pillow, as the gate reads them, and nothing else."""
    with Image.open(io.BytesIO(body), formats=["GIF"]) as im:
        index = 0
        while True:  # as gate/hashing/frames.py walks them (``n_frames`` would parse the file twice)
            im.load()
            index += 1
            try:
                im.seek(index)
            except EOFError:
                return


def _pillow_lzw(body: bytes) -> Callable[[], None]:
    """Pillow's GIF decoder alone on each frame's image data, as Pillow's parser found it (the frame's
    tile), decoded to palette indices and not composited: the part of Pillow's reading that no way of
    using Pillow avoids."""
    tiles = []
    with Image.open(io.BytesIO(body), formats=["GIF"]) as im:
        index = 0
        while True:
            tiles.extend(im.tile)
            im.load()
            index += 1
            try:
                im.seek(index)
            except EOFError:
                break
    ends = [tile.offset for tile in tiles[1:]] + [len(body)]
    frames = []  # each frame's size, image data and decoder arguments, cut outside the timing
    for tile, end in zip(tiles, ends, strict=True):
        assert tile.extents is not None and tile.args is not None
        x0, y0, x1, y1 = tile.extents
        frames.append(((x1 - x0, y1 - y0), body[tile.offset : end], tile.args))

    def decode() -> None:
        for size, data, args in frames:
            Image.frombytes("P", size, data, "gif", *args)

    return decode


def _vips_frames(body: bytes) -> None:
    """Every frame decoded and composited by libvips, set up as the gate runs it (one thread, no
    operation cache: gate/hashing/vips.py), into memory as RGBA: not hashed."""
    assert vips.available()
    pyvips.Image.gifload_buffer(body, n=-1, access="sequential").write_to_memory()


def _as_worker(body: bytes, side: ThreadPoolExecutor, *, read_ahead: bool) -> object:
    """One job as a hashing worker runs it (gate/hashing/worker.py ``serve``): the digests in its side
    thread from the start, the image in this one, its frames read ahead (or, to compare, in turn)."""
    found = side.submit(digests, body)
    return hash_image(body, sniff(body), OPTIONS, read_ahead=read_ahead), found.result()


def _latency(body: bytes, rounds: int) -> list[tuple[float, float]]:
    """Median wall and CPU ms of the job with frames read ahead, then in turn, then of Pillow's decoding
    and compositing alone, then of the body's digests taken twice at once in two threads (how much of a
    second core the host gave: wall ≈ CPU / 2 when a core was free, ≈ CPU when not), run in turn round
    after round (the same machine state for each). Runs in a process set up as a hashing worker
    (``prepare_process``: its allocator settings decide what a frame's fresh arrays cost)."""
    side = ThreadPoolExecutor(max_workers=1)

    def twice() -> None:
        other = side.submit(digests, body)
        digests(body)
        other.result()

    works: list[Callable[[], object]] = [
        lambda: _as_worker(body, side, read_ahead=True),
        lambda: _as_worker(body, side, read_ahead=False),
        lambda: _pillow_frames(body),
        twice,
    ]
    for work in works:
        work()  # warm: caches, the side thread, the native PDQ's proof
    times: list[tuple[list[float], list[float]]] = [([], []) for _ in works]
    for _ in range(rounds):
        for work, (wall, cpu) in zip(works, times, strict=True):
            start, start_cpu = time.perf_counter(), time.process_time()
            work()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    side.shutdown()
    return [(statistics.median(w) * 1000, statistics.median(c) * 1000) for w, c in times]


def _latency_in_a_worker(body: bytes, rounds: int) -> list[tuple[float, float]]:
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=context, initializer=prepare_process) as process:
        return process.submit(_latency, body, rounds).result()


def _paired_ms(works: list[Callable[[], object]], rounds: int) -> list[float]:
    """Median CPU ms of each of ``works``, run in turn round after round (peers see the same load)."""
    times: list[list[float]] = [[] for _ in works]
    for _ in range(rounds):
        for work, spent in zip(works, times, strict=True):
            start = time.process_time()
            work()
            spent.append(time.process_time() - start)
    return [statistics.median(spent) * 1000 for spent in times]


def _pan(photo: Image.Image, count: int) -> list[Image.Image]:
    """``count`` distinct SIDE × SIDE frames: a window sliding across the photo, as a GIF tool quantizes."""
    wide = photo.resize((SIDE * 2, SIDE), Image.Resampling.BICUBIC)
    step = SIDE / count
    return [
        wide.crop((int(i * step), 0, int(i * step) + SIDE, SIDE)).quantize(
            256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
        for i in range(count)
    ]


def run(report: Report, rounds: int) -> None:
    (name, photo), *_ = photos(1)
    frames = _pan(photo, FRAMES)
    ten = [frames[i * (FRAMES // 10)] for i in range(10)]
    big = photo.resize(SIZES["12MP"], Image.Resampling.BICUBIC)
    jpeg = save(big, "JPEG", quality=85)
    cases = [
        (f"GIF, {FRAMES} distinct frames of {SIDE} px", save(frames[0], "GIF", *frames[1:], duration=40, loop=0),
         "first frame as a still GIF", save(frames[0], "GIF")),
        (f"GIF, {FRAMES} frames of {SIDE} px, 10 pictures repeated",
         save(ten[0], "GIF", *(ten[i % 10] for i in range(1, FRAMES)), duration=40, loop=0),
         "first frame as a still GIF", save(ten[0], "GIF")),
        (f"WebP, {FRAMES} distinct frames of {SIDE} px",
         save(frames[0].convert("RGB"), "WEBP", *(f.convert("RGB") for f in frames[1:]), quality=80, duration=40),
         "first frame as a still WebP", save(frames[0].convert("RGB"), "WEBP", quality=80)),
        ("12 MP JPEG, EXIF Orientation = 6", save(big, "JPEG", quality=85, exif=exif(6)),
         "the same JPEG untagged", jpeg),
        ("12 MP JPEG that sniffs as MP4", polyglot(jpeg, b"ftyp"), "the plain JPEG", jpeg),
    ]  # fmt: skip
    table = report.table(
        "Judging every picture: animations, orientation, polyglots (one core, CPU ms per upload)",
        ["upload", "bytes", "frames", "hashes", "ms", "baseline", "baseline ms", "ratio", "ms per frame"],
        note=f"Photo: {name}. hashes: distinct PDQ hashes, i.e. HMA lookups. ms per frame: the upload's "
        "cost beyond its baseline, over its frames after the first.",
    )
    for label, body, base_label, base in cases:
        hash_bytes(body, OPTIONS), hash_bytes(base, OPTIONS)  # warm caches outside the timing
        hashes = hash_bytes(body, OPTIONS)
        ms = _cpu_ms(functools.partial(hash_bytes, body, OPTIONS), rounds)
        base_ms = _cpu_ms(functools.partial(hash_bytes, base, OPTIONS), rounds)
        frames_n = hashes.frames or 1
        table.add(
            **{
                "upload": label,
                "bytes": len(body),
                "frames": frames_n,
                "hashes": len(hashes.pdq),
                "ms": ms,
                "baseline": base_label,
                "baseline ms": base_ms,
                "ratio": f"{ms / base_ms:.2f}×",
                "ms per frame": (ms - base_ms) / (frames_n - 1) if frames_n > 1 else "-",
            }
        )
        if label.startswith(f"GIF, {FRAMES} distinct"):
            pillow, lzw, vips, exact = _paired_ms(
                [
                    functools.partial(_pillow_frames, body),
                    _pillow_lzw(body),
                    functools.partial(_vips_frames, body),
                    functools.partial(digests, body),
                ],
                max(rounds, 5),
            )
            # The upload's latency: the job as a worker runs it, frames read ahead (the gate) and in
            # turn (before), beside Pillow's decoding alone, in alternation (the same machine state).
            (ahead, ahead_cpu), (in_turn, in_turn_cpu), (pillow_wall, _), (two, two_cpu) = (
                _latency_in_a_worker(body, max(rounds, 9))
            )
            report.target(
                f"{FRAMES}-frame {SIDE} px GIF, every frame hashed (median wall time of the worker's job)",
                "≤ 150 ms",
                f"{ahead:.0f} ms wall, {ahead / pillow_wall:.2f}× Pillow's decoding and compositing alone "
                f"({pillow_wall:.0f} ms wall in the same rounds); {ahead_cpu:.0f} ms CPU. Frames decoded in "
                f"turn instead of read ahead: {in_turn:.0f} ms wall ({ahead / in_turn:.2f}×), {in_turn_cpu:.0f} "
                f"ms CPU ({ahead_cpu / in_turn_cpu:.2f}×); a second core was free for "
                f"{two_cpu / two - 1:.0%} of the time (two digests at once: {two:.0f} ms wall, "
                f"{two_cpu:.0f} ms CPU). One core, all serial (hash_bytes, the row above): "
                f"{ms:.0f} ms CPU, {len(hashes.pdq)} hashes. Below it: Pillow's decoding and compositing "
                f"alone {pillow:.0f} ms CPU (its LZW decoder alone {lzw:.0f} ms) + the body's digests "
                f"{exact:.0f} ms; the hashing of {frames_n} frames {ms - pillow - exact:.0f} ms. "
                f"libvips' GIF loader alone: {vips:.0f} ms ({vips / pillow:.2f}× Pillow's)",
                ahead <= 150,
                issue=18,
            )
        if label.startswith("12 MP JPEG, EXIF"):
            report.target(
                "12 MP JPEG with EXIF orientation (stored and displayed hashes), one core",
                "≤ 20 ms",
                f"{ms:.1f} ms CPU ({ms / base_ms:.2f}× the untagged JPEG)",
                ms <= 20,
                issue=18,
            )
