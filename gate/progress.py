"""Progress of a long command-line job, on stderr (stdout stays the command's output, for scripts).

On a terminal the line is rewritten in place; elsewhere (a log, ``kubectl exec`` without a tty) a line
is written at most every ``every`` seconds, and once at the end, so a long job neither floods the log
nor looks hung.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, what: str, total: int, *, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.what = what
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.tty = self.stream.isatty()
        self._last = float("-inf")
        self._done = 0
        self._written = -1

    def __call__(self, done: int) -> None:
        """``done`` items so far (of ``total``)."""
        self._done = done
        now = time.monotonic()
        if self.tty or now - self._last >= self.every:
            self._last = now
            self._write(end="\r" if self.tty else "\n")

    def finish(self) -> None:
        """The final count, unless the last line already said it (a terminal's line is ended)."""
        if self._done != self._written:
            self._write(end="\n")
        elif self.tty:
            self.stream.write("\n")

    def _write(self, end: str) -> None:
        self._written = self._done
        share = f" ({min(100, self._done * 100 // self.total)}%)" if self.total else ""
        self.stream.write(f"{self.what}: {self._done}/{self.total}{share}{end}")
        self.stream.flush()
