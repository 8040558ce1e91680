"""ReadAhead hands over every item in order, at most ``depth`` ahead, with the iterator's errors, and
leaves no thread behind when its reader stops early."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

import pytest

from gate.hashing.read_ahead import ReadAhead


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
