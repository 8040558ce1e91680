"""``ReadAhead``: the items of an iterator, computed one step ahead in a thread of their own.

Why (issue 18): an animation's frames are decoded one after another (each is composited over the
last), and each is then PDQ-hashed; done in turn, a 100-frame GIF's latency was the sum of both.
Pillow's decoders, its conversions and the native PDQ call release the GIL, so the next frame can be
decoded while this one is hashed: the latency becomes about the longer of the two. The CPU spent is
the same (a little more: the hand-over between threads); it is only spread over two cores.

What it guarantees, so that the hashes are exactly those of the plain loop:
- order: items arrive in the order the iterator gives them, each once;
- bounded memory: at most ``depth`` items wait between the threads, plus the one the thread is
  computing (and the one the caller holds), whatever the relative speeds;
- errors: an exception raised by the iterator reaches the caller after the items before it, as it
  would have in the plain loop; when the caller stops early (an exception of its own, or ``break``),
  leaving the ``with`` block stops the thread after its current item, closes the iterator (its
  ``finally`` clauses run, in that thread) and waits for it, so nothing is left reading the image.
A hard stop (the hashing worker's SIGALRM deadline) ends the whole process, this thread with it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    """The iterator is exhausted (``error`` None) or raised ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """``with ReadAhead(source) as items: for item in items: ...``"""

    def __init__(self, source: Iterator[T], *, depth: int = 1, name: str = "gate-read-ahead") -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._source = source
        self._queue: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        # A daemon: a decoder that never returns must not keep the process alive at exit.
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)

    def __enter__(self) -> Iterator[T]:
        self._thread.start()
        return self._items()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        # Make room for the item the thread may be waiting to hand over; it then sees the stop.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()

    def _items(self) -> Generator[T, None, None]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    def _produce(self) -> None:
        # The protocol with ``__exit__``: after each item handed over this thread looks at the stop flag,
        # and it hands over the end only if the flag is clear. So once the caller has stopped, at most
        # one put is pending, and the one drain in ``__exit__`` makes room for it.
        end = _End()
        try:
            for item in self._source:
                self._queue.put(item)
                if self._stop.is_set():
                    break
        except BaseException as error:  # handed to the caller, who raises it in its own thread
            end = _End(error)
        close = getattr(self._source, "close", None)
        if close is not None:
            try:
                close()  # a generator's cleanup runs here, in the thread that ran it
            except BaseException as error:
                end = _End(end.error or error)
        if not self._stop.is_set():  # the caller is still reading: it waits for this
            self._queue.put(end)
