"""pHash / dHash: computed only on request, and close to imagehash run on the whole image."""

from __future__ import annotations

import io

import imagehash
import pytest
from PIL import Image

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from tests.unit.hashing.corpus import bits, encode, resized


def test_not_computed_unless_asked() -> None:
    hashes = hash_bytes(encode(resized("coffee.png", 600), "PNG"), HashOptions())
    assert (hashes.phash, hashes.dhash) == (None, None)


@pytest.mark.parametrize("long_side", [600, 2500])  # full resolution and the fast path
@pytest.mark.parametrize("name", ["coffee.png", "astronaut.png", "rocket.jpg"])
def test_close_to_imagehash_on_the_whole_image(name: str, long_side: int) -> None:
    body = encode(resized(name, long_side), "JPEG")
    hashes = hash_bytes(body, HashOptions(phash=True, dhash=True))
    with Image.open(io.BytesIO(body)) as im:
        reference_phash, reference_dhash = str(imagehash.phash(im)), str(imagehash.dhash(im))
    assert hashes.phash is not None
    assert hashes.dhash is not None
    assert len(hashes.phash) == len(hashes.dhash) == 16
    assert bits(hashes.phash, reference_phash) <= 4
    assert bits(hashes.dhash, reference_dhash) <= 4
