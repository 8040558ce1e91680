"""Property: no mutated header makes the hasher raise or kill a worker, and whatever Pillow can open is
hashed as an image (never waved through as "unscannable")."""

from __future__ import annotations

import io
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gate.hashing import formats
from gate.hashing.hasher import Hasher, hash_bytes
from gate.hashing.options import HashOptions
from gate.types import Hashes
from tests.support.mutations import HEADER, KINDS, Op, apply, random_bodies, seeds

# Small limits keep every example quick whatever its header claims.
OPTIONS = HashOptions(max_image_pixels=4_000_000, max_frames=16, max_total_pixels=4_000_000)

ops = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 4 * HEADER), st.binary(min_size=1, max_size=8)),
    min_size=1,
    max_size=4,
)


def pillow_shows_a_picture(body: bytes) -> bool:
    """Some decoder the gate allows opens ``body`` and decodes its first picture (within the limit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(body), formats=formats.tried()) as im:
                if im.width * im.height > OPTIONS.max_image_pixels:
                    return True  # a picture, too large to decode here: the gate must call it a bomb
                im.load()
        except Exception:
            return False
    return True


def judged_as_an_image(hashes: Hashes) -> bool:
    return hashes.is_image and (bool(hashes.pdq) or hashes.unhashable is not None)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(seeds()), mutations=ops)
def test_mutated_headers_never_raise_and_every_picture_pillow_shows_is_judged(
    seed: bytes, mutations: list[Op]
) -> None:
    body = apply(seed, mutations)
    hashes = hash_bytes(body, OPTIONS)  # never raises
    assert hashes.size == len(body)
    if pillow_shows_a_picture(body):
        assert judged_as_an_image(hashes), (hashes.media_types, hashes.unhashable)
    if hashes.unhashable is not None:
        assert hashes.unhashable_detail and len(hashes.unhashable_detail) <= 160


async def test_mutated_headers_never_kill_a_worker() -> None:
    bodies = random_bodies(80)
    hasher = Hasher(workers=1)
    try:
        await hasher.warm_up()
        (pid,) = hasher.worker_pids()
        results = [await hasher.hash(body, OPTIONS) for body in bodies]
        assert hasher.worker_pids() == [pid]  # the same worker answered every one
    finally:
        await hasher.close()
    for body, got in zip(bodies, results, strict=True):
        expected = hash_bytes(body, OPTIONS)
        assert (got.media_types, got.pdq, got.unhashable) == (
            expected.media_types,
            expected.pdq,
            expected.unhashable,
        )
