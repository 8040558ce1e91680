"""The async Hasher gives exactly what hash_bytes gives, from its process or thread pool."""

from __future__ import annotations

import asyncio
import os

import pytest

from gate.hashing.hasher import Hasher, hash_bytes
from gate.hashing.options import HashOptions
from gate.types import Unhashable
from tests.unit.hashing_corpus import encode, gif, resized


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


@pytest.mark.parametrize("pool", ["process", "thread"])
async def test_hasher_matches_hash_bytes(pool: str) -> None:
    bodies = _bodies()
    options = HashOptions(dihedral=True)
    hasher = Hasher(workers=2, pool=pool)  # type: ignore[arg-type]
    try:
        await hasher.warm_up()
        results = await asyncio.gather(*(hasher.hash(body, options) for body in bodies))
    finally:
        await hasher.close()
    assert results == [hash_bytes(body, options) for body in bodies]
    assert [len(r.pdq) for r in results[:4]] == [8, 8, 8, 8]
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
