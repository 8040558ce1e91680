"""The hashing workers: a dead worker costs only its own upload, the pool heals, and what a worker
answers is parsed as data."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
from typing import Any

import pytest

from gate.hashing.hasher import Hasher, hash_bytes
from gate.hashing.options import HashOptions
from gate.hashing.pool import WorkerDied, decode_answer
from gate.types import Unhashable, Variant
from tests.unit.hashing.corpus import encode, photo, resized

OPTIONS = HashOptions()
# The slow PNG decoded by Pillow: libvips (gate/hashing/vips.py) takes a fraction of the time.
PILLOW = HashOptions(libvips=False)


@functools.cache
def _slow() -> bytes:
    # A 27 MP PNG: well over a second of decoding in a worker.
    return encode(photo("coffee.png").resize((6000, 4500)), "PNG")


def _quick(name: str = "coffee.png") -> bytes:
    return encode(resized(name, 600), "JPEG")


async def _wait_until_busy(hasher: Hasher, task: asyncio.Task[Any]) -> None:
    # The job has reached the worker once its body is off the gate's socket; give it a moment.
    await asyncio.sleep(0.3)
    assert not task.done()


async def test_a_killed_worker_costs_only_its_own_upload_and_is_replaced() -> None:
    hasher = Hasher(workers=1)
    quick = [_quick("coffee.png"), _quick("chelsea.png"), _quick("astronaut.png")]
    try:
        await hasher.warm_up()
        (pid,) = hasher.worker_pids()
        slow = asyncio.create_task(hasher.hash(_slow(), PILLOW))
        await _wait_until_busy(hasher, slow)
        queued = [asyncio.create_task(hasher.hash(body, OPTIONS)) for body in quick]  # wait for the worker
        os.kill(pid, signal.SIGKILL)
        lost = await slow
        assert lost.pdq == () and lost.unhashable is Unhashable.CORRUPT
        assert "crashed" in (lost.unhashable_detail or "")
        assert lost.sha256 and lost.size > 0  # the exact digests are still there, taken by the gate
        # The uploads queued behind it were hashed by the replacement, exactly as hash_bytes does.
        assert await asyncio.gather(*queued) == [hash_bytes(body, OPTIONS) for body in quick]
        (replacement,) = hasher.worker_pids()
        assert replacement != pid
    finally:
        await hasher.close()


async def test_a_cancelled_upload_leaves_its_worker_in_step() -> None:
    hasher = Hasher(workers=1)
    try:
        await hasher.warm_up()
        (pid,) = hasher.worker_pids()
        slow = asyncio.create_task(hasher.hash(_slow(), PILLOW))
        await _wait_until_busy(hasher, slow)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        quick = _quick()
        # The worker finishes the abandoned job, then takes this one: same process, right answer.
        assert await hasher.hash(quick, OPTIONS) == hash_bytes(quick, OPTIONS)
        assert hasher.worker_pids() == [pid]
    finally:
        await hasher.close()


async def test_close_ends_the_workers_and_refuses_queued_uploads() -> None:
    hasher = Hasher(workers=1)
    await hasher.warm_up()
    (pid,) = hasher.worker_pids()
    slow = asyncio.create_task(hasher.hash(_slow(), PILLOW))
    await _wait_until_busy(hasher, slow)
    queued = asyncio.create_task(hasher.hash(_quick(), OPTIONS))
    await asyncio.sleep(0)
    await hasher.close()
    for task in (slow, queued):
        with pytest.raises(RuntimeError, match="closed"):
            await task
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _answer(**image: Any) -> dict[str, Any]:
    return {
        "digests": {"sha256": "a" * 64, "md5": "b" * 32, "sha1": "c" * 40, "cid": "bafk", "size": 3},
        "image": {
            "pdq": [
                {"hex": "d" * 64, "quality": 90, "transform": "original", "frame": 2, "variant": "stored"}
            ],
            "phash": None,
            "dhash": None,
            "unhashable": None,
            "unhashable_detail": None,
            "width": 10,
            "height": 20,
            "media_types": ["image/gif"],
            "frames": 3,
        }
        | image,
    }


def test_a_well_formed_answer_is_parsed() -> None:
    found, image = decode_answer(json.dumps(_answer()).encode())
    assert found.sha256 == "a" * 64 and found.size == 3
    assert image.pdq[0].hex == "d" * 64 and image.pdq[0].quality == 90
    assert (image.width, image.height) == (10, 20)
    assert image.pdq[0].frame == 2 and image.pdq[0].variant is Variant.STORED
    assert (image.media_types, image.frames) == (("image/gif",), 3)
    _, bad = decode_answer(json.dumps(_answer(pdq=[], unhashable="truncated")).encode())
    assert bad.unhashable is Unhashable.TRUNCATED


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x04\x95 a pickle, not JSON",
        b"[]",
        json.dumps({"digests": {}}).encode(),
        json.dumps(_answer(width="10")).encode(),
        json.dumps(_answer(height=True)).encode(),
        json.dumps(_answer(unhashable="exploded")).encode(),
        json.dumps(_answer(pdq=[{"hex": 1, "quality": 90, "transform": "original"}])).encode(),
        json.dumps(_answer(pdq="d" * 64)).encode(),
        json.dumps(_answer(pdq=[{"hex": "d" * 64, "quality": 90, "transform": "original"}])).encode(),
        json.dumps(
            _answer(
                pdq=[{"hex": "d" * 64, "quality": 9, "transform": "x", "frame": True, "variant": "stored"}]
            )
        ).encode(),
        json.dumps(
            _answer(pdq=[{"hex": "d" * 64, "quality": 9, "transform": "x", "frame": 0, "variant": "rotated"}])
        ).encode(),
        json.dumps(_answer(media_types="image/gif")).encode(),
        json.dumps(_answer(frames="3")).encode(),
    ],
)
def test_anything_else_from_a_worker_counts_as_a_dead_worker(raw: bytes) -> None:
    with pytest.raises(WorkerDied, match="malformed"):
        decode_answer(raw)
