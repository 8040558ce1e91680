"""Noticing change: ``FileWatch`` (has a file, or a directory's files, changed?) and ``every`` (the one
poll loop of the gate's background work).

The policy file, the bank directory and the evidence keyring are re-read when they change. Polling the
files' identity — name, inode, device, size, modification time — is what works everywhere they live: a
Kubernetes ConfigMap (a symlink swapped under the mount: a new inode), a ``:ro`` bind mount, an editor
that saves by writing a new file and renaming it over the old one (a new inode), NFS. Reading the
contents only when the identity changed keeps a check to a few ``stat`` calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)

# (name, inode, device, size, mtime_ns) of each file looked at, in name order.
Stamp = tuple[tuple[str, int, int, int, int], ...]


class FileWatch:
    """One file (``pattern`` None), or every file in a directory matching ``pattern`` (dot files skipped)."""

    def __init__(self, path: Path, pattern: str | None = None) -> None:
        self.path = path
        self.pattern = pattern
        self._seen: Stamp | None = None

    def look(self) -> Stamp | None:
        """The files as they are now; None when the file (or the directory) is missing."""
        if self.pattern is None:
            files = [self.path]
        elif self.path.is_dir():
            files = sorted(p for p in self.path.glob(self.pattern) if not p.name.startswith("."))
        else:
            return None
        out = []
        for path in files:
            try:
                st = os.stat(path)
            except OSError:
                if self.pattern is None:
                    return None
                continue  # removed between the listing and the stat: the next look says so
            out.append((path.name, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def seen(self, stamp: Stamp | None) -> None:
        """What the caller has read (take the stamp *before* reading, so a write meanwhile is news)."""
        self._seen = stamp

    def changed(self) -> Stamp | None:
        """The new stamp when the files differ from what was last ``seen``, else None (missing too)."""
        stamp = self.look()
        return stamp if stamp is not None and stamp != self._seen else None


async def every(
    interval: float, step: Callable[[], Awaitable[object]], *, what: str, now: bool = False
) -> None:
    """Run ``step`` every ``interval`` seconds (first at once when ``now``) until cancelled. A step that
    raises is logged and tried again next time: background work must outlive its surprises."""
    if not now:
        await asyncio.sleep(interval)
    while True:
        try:
            await step()
        except Exception:
            log.exception("%s failed; trying again in %g s", what, interval)
        await asyncio.sleep(interval)
