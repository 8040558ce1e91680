"""What a scan has done so far: counters, a progress bar on a terminal (repos, blobs, bytes, rate, ETA),
periodic lines otherwise (logs, CI, ``nohup``), and the summary at the end. Never a DID or CID in the
progress output: it ends up in logs that outlive the scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Tally:
    repos_total: int = 0
    repos_done: int = 0  # read to the end this run
    repos_unchanged: int = 0  # finished before and not changed since: not read
    repos_failed: int = 0
    repos_without_records: int = 0  # read, but which record references which blob is not known
    blobs_listed: int = 0
    blobs_known: int = 0  # recorded by an earlier scan: not read again
    blobs_read: int = 0
    bytes_read: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)  # "withhold:done", "takedown:capped"...
    problems: Counter[str] = field(default_factory=Counter)  # by kind
    started: float = field(default_factory=time.monotonic)

    @property
    def repos_finished(self) -> int:
        return self.repos_done + self.repos_unchanged + self.repos_failed

    def eta(self) -> float | None:
        finished = self.repos_finished
        if not finished or finished >= self.repos_total:
            return None
        return (time.monotonic() - self.started) / finished * (self.repos_total - finished)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        eta = self.eta()
        return (
            f"repos {self.repos_finished}/{self.repos_total}  blobs {self.blobs_read} read"
            f" ({self.blobs_known} known)  {_size(self.bytes_read)}  {self.blobs_read / elapsed:.1f} blobs/s"
            f"  {_size(self.bytes_read / elapsed)}/s  problems {sum(self.problems.values())}"
            + (f"  ETA {_duration(eta)}" if eta is not None else "")
        )

    def summary(self) -> dict[str, object]:
        elapsed = time.monotonic() - self.started
        return {
            "repos": {
                "total": self.repos_total,
                "read": self.repos_done,
                "unchanged": self.repos_unchanged,
                "failed": self.repos_failed,
                "without_records": self.repos_without_records,
            },
            "blobs": {"listed": self.blobs_listed, "read": self.blobs_read, "known": self.blobs_known},
            "bytes": self.bytes_read,
            "seconds": round(elapsed, 3),
            "blobs_per_second": round(self.blobs_read / elapsed, 2) if elapsed > 0 else None,
            "verdicts": dict(sorted(self.verdicts.items())),
            "actions": dict(sorted(self.actions.items())),
            "problems": dict(sorted(self.problems.items())),
        }

    def summary_text(self) -> str:
        s = self.summary()
        lines = [
            f"scan finished in {_duration(float(s['seconds']))}"  # type: ignore[arg-type]
            f" ({s['blobs_per_second']} blobs/s)",
            f"repos: {self.repos_total} ({self.repos_done} read, {self.repos_unchanged} unchanged,"
            f" {self.repos_failed} failed, {self.repos_without_records} without records)",
            f"blobs: {self.blobs_listed} listed, {self.blobs_read} read ({_size(self.bytes_read)}),"
            f" {self.blobs_known} already recorded",
        ]
        for title, counts in (
            ("verdicts", self.verdicts),
            ("actions", self.actions),
            ("problems", self.problems),
        ):
            shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
            lines.append(f"{title}: {shown}")
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps(self.summary(), sort_keys=True)


class Progress:
    """Draws ``tally`` on ``out``: a bar redrawn in place on a terminal, else a line every ``interval``."""

    def __init__(self, tally: Tally, out: TextIO = sys.stderr, *, mode: str = "auto", interval: float = 10.0):
        self.tally = tally
        self.out = out
        self.mode = ("bar" if out.isatty() else "lines") if mode == "auto" else mode
        self.interval = 0.2 if self.mode == "bar" else interval
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> Progress:
        if self.mode != "none":
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.mode == "bar":
            self._draw()
            self.out.write("\n")
            self.out.flush()

    async def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.interval)
                self._draw()

    def _draw(self) -> None:
        t = self.tally
        if self.mode == "bar":
            width = 24
            done = int(width * t.repos_finished / t.repos_total) if t.repos_total else 0
            self.out.write(f"\r[{'#' * done}{'.' * (width - done)}] {t.line()}\x1b[K")
        else:
            self.out.write(f"scan: {t.line()}\n")
        self.out.flush()


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
