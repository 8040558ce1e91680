"""ReadAhead hands over every item in order, at most ``depth`` ahead, with the iterator's errors, and
leaves no thread behind when its reader stops early; an animation's frames read ahead give exactly the
hashes of its frames read in turn."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Generator
from typing import Any

import pytest
from PIL import Image

from gate.hashing.frames import may_hold_several
from gate.hashing.image import hash_image
from gate.hashing.options import HashOptions
from gate.hashing.read_ahead import ReadAhead
from gate.hashing.sniff import sniff
from gate.types import Variant
from tests.unit.hashing.animations import (
    apng,
    apng_default_image,
    clean,
    first_frame_with_its_own_palette,
    local_palettes,
    one_palette,
    pan_gif,
    truncated_gif,
    webp_lossless,
    webp_lossy,
)
from tests.unit.hashing.corpus import encode

OPTIONS = HashOptions()


class Source:
    """A generator of 0, 1, 2... that records what it did, and in which thread."""

    def __init__(self, count: int, *, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.made = 0
        self.closed_in: str | None = None
        self.threads: set[str] = set()

    def items(self) -> Generator[int, None, None]:
        try:
            for n in range(self.count):
                self.threads.add(threading.current_thread().name)
                if n == self.fail_at:
                    raise ValueError(f"item {n} is broken")
                self.made += 1
                yield n
        finally:
            self.closed_in = threading.current_thread().name


def _alive(name: str) -> bool:
    return any(t.name == name for t in threading.enumerate())


def test_every_item_comes_once_in_order_from_another_thread() -> None:
    source = Source(200)
    with ReadAhead(source.items(), name="test-ahead") as items:
        assert list(items) == list(range(200))
    assert source.threads == {"test-ahead"} and source.closed_in == "test-ahead"
    assert not _alive("test-ahead")


def test_an_error_arrives_after_the_items_before_it() -> None:
    source = Source(10, fail_at=4)
    got: list[int] = []
    with pytest.raises(ValueError, match="item 4 is broken"):
        with ReadAhead(source.items(), name="test-ahead") as items:
            for item in items:
                got.append(item)
    assert got == [0, 1, 2, 3]
    assert not _alive("test-ahead")


@pytest.mark.parametrize("depth", [1, 2])
def test_the_thread_stays_at_most_depth_items_ahead(depth: int) -> None:
    source = Source(100)
    with ReadAhead(source.items(), depth=depth) as items:
        for taken, _item in enumerate(items, start=1):
            if taken in (1, 10):
                time.sleep(0.05)  # ample time to run ahead, were it unbounded
                # ``depth`` waiting, and one made that waits for room.
                assert source.made <= taken + depth + 1
    assert source.made == 100


def test_a_reader_that_stops_early_stops_and_closes_the_source_in_its_thread() -> None:
    source = Source(1_000_000)
    with pytest.raises(RuntimeError, match="reader failed"):
        with ReadAhead(source.items(), name="test-ahead") as items:
            for item in items:
                if item == 3:
                    raise RuntimeError("reader failed")
    # Leaving the block waited for the thread: it is gone, it closed the source, and made few more.
    assert not _alive("test-ahead")
    assert source.closed_in == "test-ahead"
    assert source.made <= 3 + 1 + 2


def test_a_reader_that_breaks_off_leaves_no_thread() -> None:
    source = Source(1_000_000)
    with ReadAhead(source.items(), name="test-ahead") as items:
        for item in items:
            if item == 0:
                break
    assert not _alive("test-ahead") and source.closed_in == "test-ahead"


def test_a_reader_that_takes_nothing_leaves_no_thread() -> None:
    source = Source(1_000_000)
    with ReadAhead(source.items(), name="test-ahead"):
        pass
    assert not _alive("test-ahead") and source.made <= 2


# (name, body, options, frames each with a hash of its own: a dropped or reordered one shows)
ANIMATIONS = [
    ("gif-pan", pan_gif, OPTIONS, 30),
    ("gif-pan-dihedral-as-hma", pan_gif, HashOptions(dihedral=True, as_hma=True), 30),
    ("gif-local-palettes", local_palettes, OPTIONS, 5),
    ("gif-one-palette", one_palette, OPTIONS, 5),
    ("gif-first-frame-own-palette", lambda: first_frame_with_its_own_palette()[0], OPTIONS, 2),
    ("gif-truncated", truncated_gif, OPTIONS, None),
    ("gif-past-max-frames", pan_gif, HashOptions(max_frames=12), None),
    ("apng", apng, OPTIONS, 5),
    ("apng-default-image", apng_default_image, OPTIONS, 5),
    ("webp-lossless-alpha", webp_lossless, OPTIONS, 5),
    ("webp-lossy", webp_lossy, OPTIONS, 20),
]


@pytest.mark.parametrize(
    ("make", "options", "distinct"), [row[1:] for row in ANIMATIONS], ids=[row[0] for row in ANIMATIONS]
)
def test_frames_read_ahead_give_exactly_the_hashes_of_frames_read_in_turn(
    make: Any, options: HashOptions, distinct: int | None
) -> None:
    # Uploads read an animation's frames ahead in a thread (gate/hashing/read_ahead.py); every hash,
    # its frame number and quality, the order, the frame count and any failure are those of one thread.
    body = make()
    sniffed = sniff(body)
    serial = hash_image(body, sniffed, options)
    assert hash_image(body, sniffed, options, read_ahead=True) == serial
    if distinct is not None:  # each frame has a hash of its own here, so a lost or swapped frame shows
        stored = [p for p in serial.pdq if p.variant is Variant.STORED and p.transform == "original"]
        assert [p.frame for p in stored] == list(range(distinct)) == list(range(serial.frames or 0))
    else:  # cut short: the frames before still count, and the failure is the same
        assert serial.unhashable is not None and serial.pdq


@pytest.mark.parametrize(
    ("make", "several"),
    [
        (lambda: encode(clean(), "JPEG"), False),
        (lambda: encode(clean(), "PNG"), False),
        (lambda: encode(clean(), "WEBP"), False),
        (apng, True),
        (webp_lossy, True),
        (lambda: encode(clean(), "GIF"), True),  # a GIF counts its frames only by reading them all
    ],
    ids=["jpeg", "png", "webp", "apng", "animated-webp", "gif"],
)
def test_what_is_read_ahead_is_what_may_hold_several_pictures(make: Any, several: bool) -> None:
    with Image.open(io.BytesIO(make())) as im:
        assert may_hold_several(im) is several
