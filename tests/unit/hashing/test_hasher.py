"""The async Hasher gives exactly what hash_bytes gives, from its worker processes."""

from __future__ import annotations

import asyncio
import io
import os

import numpy as np
import pytest
from PIL import Image
from prometheus_client import REGISTRY

from gate.errors import Overloaded
from gate.hashing.hasher import Hasher, hash_bytes
from gate.hashing.options import HashOptions
from gate.proxy.budget import MemoryBudget, Reservation
from gate.types import Unhashable
from tests.unit.hashing.corpus import encode, gif, photo, resized


def _bodies() -> list[bytes]:
    im = resized("astronaut.png", 1300)
    return [
        encode(im, "JPEG"),
        encode(im, "PNG"),
        gif(resized("coffee.png", 700)),
        encode(resized("chelsea.png", 700), "WEBP"),
        encode(im, "PNG")[:5000],  # truncated
        b"not an image" * 1000,
        b"",
    ]


async def test_hasher_matches_hash_bytes() -> None:
    bodies = _bodies()
    options = HashOptions(dihedral=True)
    hasher = Hasher(workers=2)
    try:
        await hasher.warm_up()
        results = await asyncio.gather(*(hasher.hash(body, options) for body in bodies))
    finally:
        await hasher.close()
    assert results == [hash_bytes(body, options) for body in bodies]
    # 8 dihedral hashes each; the GIF also HMA's hash of its palette indices (crossing the worker socket).
    assert [len(r.pdq) for r in results[:4]] == [8, 8, 9, 8]
    assert results[4].unhashable is Unhashable.TRUNCATED
    assert results[5].media_type == "application/octet-stream"


async def test_closed_hasher_refuses_work() -> None:
    hasher = Hasher(workers=1)
    await hasher.close()
    with pytest.raises(RuntimeError, match="closed"):
        await hasher.hash(b"x", HashOptions())


async def test_default_workers_is_one_per_core() -> None:
    hasher = Hasher()
    try:
        assert hasher.workers == (os.cpu_count() or 1)
        hashes = await hasher.hash(encode(resized("coffee.png", 600), "PNG"), HashOptions())
        assert hashes.pdq
    finally:
        await hasher.close()


async def test_a_decode_past_the_deadline_is_unhashable_and_the_pool_recovers() -> None:
    # A 27 MP PNG needs well over 0.25 s of decoding by Pillow (libvips' own deadline test is in
    # test_vips.py); a 600 px one a few milliseconds.
    slow = encode(photo("coffee.png").resize((6000, 4500)), "PNG")
    quick = encode(resized("coffee.png", 600), "PNG")
    hasher = Hasher(workers=1, decode_timeout=0.25)
    try:
        hashes = await hasher.hash(slow, HashOptions(libvips=False))
        assert hashes.pdq == ()
        assert hashes.unhashable is Unhashable.CORRUPT
        assert "longer than 0.25 s" in (hashes.unhashable_detail or "")
        assert hashes.size == len(slow)
        # The same hasher, its worker replaced: the next upload is hashed normally.
        assert (await hasher.hash(quick, HashOptions())).pdq == hash_bytes(quick, HashOptions()).pdq
    finally:
        await hasher.close()


async def test_the_workers_copy_of_a_body_is_held_under_the_budget() -> None:
    """The body crosses into a worker process, which holds its own copy until it answers: that copy is
    reserved from the gate's budget beside the gate's, and given back with the answer."""
    body = encode(resized("coffee.png", 600), "PNG")
    budget = MemoryBudget(2 * len(body))
    held = Reservation(budget)  # the gate's own copy, as the upload path reserves it
    held.grow_to(len(body))
    hasher = Hasher(workers=1, budget=budget)
    try:
        await hasher.warm_up()
        hashing = asyncio.create_task(hasher.hash(body, HashOptions()))
        await asyncio.sleep(0)  # the task runs up to its first wait: the copy is taken before it is sent
        assert (budget.used, budget.passing) == (2 * len(body), len(body))
        assert (await hashing).pdq
        assert (budget.used, budget.passing) == (len(body), 0)
        # One byte short of both copies, with nothing else hashing: refused, not hashed past it.
        budget.limit -= 1
        with pytest.raises(Overloaded):
            await hasher.hash(body, HashOptions())
        assert budget.used == len(body)
    finally:
        await hasher.close()


def _long_animation() -> bytes:
    """120 frames of 500 px (30 MP of LZW to decode: well over 0.1 s), each a different pattern."""
    side = 500
    palette = [c for i in range(256) for c in (i, (i * 7) % 256, 255 - i)]
    grid = np.add.outer(np.arange(side), np.arange(side))
    frames = []
    for i in range(120):
        frame = Image.fromarray(((grid * (1 + i % 5) + i * 3) % 256).astype(np.uint8), "P")
        frame.putpalette(palette)
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return buffer.getvalue()


def _restarts(reason: str) -> float:
    return REGISTRY.get_sample_value("upload_gate_hash_worker_restarts_total", {"reason": reason}) or 0.0


async def test_an_animation_past_the_deadline_ends_its_worker_with_the_thread_reading_ahead() -> None:
    # The worker's SIGALRM ends the whole process, the thread decoding frames ahead with it
    # (gate/hashing/read_ahead.py): the upload is unhashable, that process is gone, and the next
    # upload is hashed by its replacement exactly as hash_bytes hashes it.
    slow = _long_animation()
    quick = gif(resized("coffee.png", 300))
    hasher = Hasher(workers=1, decode_timeout=0.1)
    try:
        await hasher.warm_up()
        (pid,) = hasher.worker_pids()
        timeouts = _restarts("timeout")
        hashes = await hasher.hash(slow, HashOptions())
        assert hashes.pdq == () and hashes.unhashable is Unhashable.CORRUPT
        assert "longer than 0.1 s" in (hashes.unhashable_detail or "")
        assert await hasher.hash(quick, HashOptions()) == hash_bytes(quick, HashOptions())
        (replacement,) = hasher.worker_pids()
        assert replacement != pid
        # Ended by its SIGALRM (not killed by the pool for hanging on), and reaped: no process is left.
        for _ in range(100):
            if _restarts("timeout") > timeouts:
                break
            await asyncio.sleep(0.05)
        assert _restarts("timeout") == timeouts + 1
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        await hasher.close()
