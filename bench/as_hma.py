"""What HMA's own hash of CMYK and palette files costs (issue 13: the ``as_hma`` variant).

Each row hashes one upload both ways in turn, round after round, on one core (this thread's CPU time,
median): as the gate does, and with the variant switched off (``HashOptions(as_hma=False)``, which no deployment uses),
so the ratio is the variant's whole cost. Files: a CMYK JPEG, a palette PNG and a palette GIF at 1 MP
(hashed at full resolution, HMA's hash bit for bit) and at 12 MP (the fast path), and an RGB JPEG of
each size for reference, which HMA hashes as the gate does: no variant, no cost. The "hashes" column is
the number of distinct PDQ hashes, i.e. HMA lookups.
"""

from __future__ import annotations

import functools
import io
import statistics
import time
from collections.abc import Callable

from PIL import Image

from bench.corpus import photos
from bench.report import Report
from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions

SIZES = {"1 MP": (1152, 864), "12 MP": (4032, 3024)}
ON, OFF = HashOptions(), HashOptions(as_hma=False)


def _save(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def _files(picture: Image.Image) -> list[tuple[str, bytes]]:
    palette = picture.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    return [
        ("CMYK JPEG", _save(picture.convert("CMYK"), "JPEG", quality=85)),
        ("palette PNG", _save(palette, "PNG", compress_level=1)),
        ("palette GIF", _save(palette, "GIF")),
        ("RGB JPEG (reference)", _save(picture, "JPEG", quality=85)),
    ]


def _cpu_ms(works: tuple[Callable[[], object], ...], rounds: int) -> list[float]:
    """The median CPU ms of each of ``works``, run in turn round after round (on a busy host, load
    that comes and goes then falls on all of them alike)."""
    times: list[list[float]] = [[] for _ in works]
    for _ in range(rounds):
        for work, spent in zip(works, times, strict=True):
            start = time.thread_time()
            work()
            spent.append(time.thread_time() - start)
    return [statistics.median(spent) * 1000 for spent in times]


def run(report: Report, rounds: int) -> None:
    (name, photo), *_ = photos(1)
    table = report.table(
        "HMA's own hash of CMYK and palette files, the as_hma variant (one core, CPU ms per upload)",
        ["upload", "bytes", "hashes", "ms", "ms without as_hma", "ratio", "added ms"],
        note=f"Photo: {name}. Without as_hma: the same upload hashed with the variant off, in the same "
        "run. hashes: distinct PDQ hashes (HMA lookups) as the gate computes them.",
    )
    for size, dims in SIZES.items():
        for label, body in _files(photo.resize(dims, Image.Resampling.BICUBIC)):
            hash_bytes(body, ON), hash_bytes(body, OFF)  # warm caches outside the timing
            on, off = _cpu_ms(
                (functools.partial(hash_bytes, body, ON), functools.partial(hash_bytes, body, OFF)), rounds
            )
            table.add(
                **{
                    "upload": f"{size} {label}",
                    "bytes": len(body),
                    "hashes": len(hash_bytes(body, ON).pdq),
                    "ms": on,
                    "ms without as_hma": off,
                    "ratio": f"{on / off:.2f}×",
                    "added ms": on - off,
                }
            )
