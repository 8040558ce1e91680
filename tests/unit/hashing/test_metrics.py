"""What the hashing workers report: time per media type, the wait for a worker, frames hashed, and why a
worker was replaced (a crash is told apart from the decode deadline)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time
from pathlib import Path

from PIL import Image
from prometheus_client import REGISTRY

from gate.hashing.hasher import Hasher
from gate.hashing.options import HashOptions
from tests.unit.hashing.corpus import encode, photo, resized

OPTIONS = HashOptions()
# The slow PNG decoded by Pillow: libvips (gate/hashing/vips.py) takes a fraction of the time.
PILLOW = HashOptions(libvips=False)
KILLS = 5


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(name: str, target: float, **labels: str) -> None:
    """The restart is counted once the old worker is reaped (off the event loop)."""
    deadline = time.monotonic() + 15
    while value(name, **labels) < target:
        assert time.monotonic() < deadline, f"{name}{labels} stayed at {value(name, **labels)}"
        await asyncio.sleep(0.05)


async def decoding(pid: int) -> None:
    """Until worker ``pid`` has spent 0.1 s of CPU since now: it has the job and is decoding (a fixed
    sleep lost the race on a busy machine, where the body had not reached the worker yet)."""
    start = cpu_seconds(pid)
    deadline = time.monotonic() + 15
    while cpu_seconds(pid) - start < 0.1:
        assert time.monotonic() < deadline, f"worker {pid} never started decoding"
        await asyncio.sleep(0.01)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def animated(frames: int) -> bytes:
    base = resized("coffee.png", 200)
    pictures = [base.rotate(90 * i) for i in range(frames)]  # distinct pictures: each one is hashed
    return encode(pictures[0], "GIF", save_all=True, append_images=pictures[1:], duration=100)


async def test_time_per_media_type_queue_wait_and_frames() -> None:
    jpeg = encode(resized("coffee.png", 600), "JPEG")
    gif = animated(3)
    assert Image.open(io.BytesIO(gif)).n_frames == 3  # type: ignore[attr-defined]  # Pillow types it on GIF and the other multi-frame formats only
    before = {
        "jpeg": value("upload_gate_hash_seconds_count", media_type="image/jpeg"),
        "gif": value("upload_gate_hash_seconds_count", media_type="image/gif"),
        "queue": value("upload_gate_hash_queue_seconds_count"),
        "frames": value("upload_gate_hashed_frames_sum"),
        "bodies": value("upload_gate_hashed_frames_count"),
    }
    hasher = Hasher(workers=1)
    try:
        await hasher.hash(jpeg, OPTIONS)
        await hasher.hash(gif, OPTIONS)
        await hasher.hash(b"not a picture at all", OPTIONS)  # no frame: not a body with frames
    finally:
        await hasher.close()
    assert value("upload_gate_hash_seconds_count", media_type="image/jpeg") == before["jpeg"] + 1
    assert value("upload_gate_hash_seconds_count", media_type="image/gif") == before["gif"] + 1
    assert value("upload_gate_hash_queue_seconds_count") == before["queue"] + 3
    assert value("upload_gate_hashed_frames_sum") == before["frames"] + 1 + 3
    assert value("upload_gate_hashed_frames_count") == before["bodies"] + 2


async def test_a_worker_killed_from_outside_is_counted_as_killed() -> None:
    """Several times over: the replacement starts while the killed worker is reaped, and multiprocessing
    let the two read its exit status at once (the loser counted the kill as a crash, once in many runs)."""
    slow = encode(photo("coffee.png").resize((6000, 4500)), "PNG")  # over a second of decoding
    before = {
        r: value("upload_gate_hash_worker_restarts_total", reason=r) for r in ("killed", "timeout", "crashed")
    }
    hasher = Hasher(workers=1)
    try:
        for n in range(1, KILLS + 1):
            await hasher.warm_up()
            (pid,) = hasher.worker_pids()
            job = asyncio.create_task(hasher.hash(slow, PILLOW))
            await decoding(pid)  # killed mid-job: a worker killed idle is "ended", not "killed"
            os.kill(pid, signal.SIGKILL)  # as the OOM killer would
            await job
            await eventually("upload_gate_hash_worker_restarts_total", before["killed"] + n, reason="killed")
    finally:
        await hasher.close()
    for reason in ("timeout", "crashed"):
        assert value("upload_gate_hash_worker_restarts_total", reason=reason) == before[reason]


async def test_a_decode_past_the_deadline_is_counted_as_a_timeout() -> None:
    slow = encode(photo("coffee.png").resize((6000, 4500)), "PNG")
    timeouts = value("upload_gate_hash_worker_restarts_total", reason="timeout")
    crashed = value("upload_gate_hash_worker_restarts_total", reason="crashed")
    hasher = Hasher(workers=1, decode_timeout=0.25)
    try:
        hashes = await hasher.hash(slow, PILLOW)
        assert hashes.unhashable is not None
        await eventually("upload_gate_hash_worker_restarts_total", timeouts + 1, reason="timeout")
    finally:
        await hasher.close()
    assert value("upload_gate_hash_worker_restarts_total", reason="crashed") == crashed
