"""The outage spool: an append-only file of decision rows (JSON lines) kept while Postgres is away.

Only rows go here — hashes, verdicts, DIDs — never upload bytes. Appends are fsynced per batch, so an
accepted batch survives a crash. Replay reads from a persisted offset in file order; the offset is
advanced only after Postgres committed the chunk, so a crash between the two replays that chunk again,
which the insert's ``ON CONFLICT (id) DO NOTHING`` turns into a no-op: every row lands exactly once.

One process owns a spool at a time (flock); the writer calls these blocking methods from a thread.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

from gate.errors import Unavailable

log = logging.getLogger(__name__)


ADOPT_CHUNK = 1000


class SpoolError(Unavailable, OSError):
    """The spool cannot take or give records (locked by another process, disk full, over the limit)."""


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.path = directory / "decisions.spool"
        self.offset_path = directory / "decisions.offset"
        self.rejected_path = directory / "decisions.rejected"
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._offset = 0
        self._size = 0
        self.pending_records = 0

    # ---- lifecycle -------------------------------------------------------------------------------

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolError(f"{self.path} is in use by another gate process") from None
        self._fd = fd
        self._size = os.fstat(fd).st_size
        self._repair_torn_tail()
        self._offset = self._read_offset()
        if self._offset > self._size:
            self._offset = 0  # truncated after the offset was written: nothing was lost, start over
        self.pending_records = self._count_lines(self._offset)
        if self.pending_records:
            log.warning("spool holds %d decisions to replay into Postgres", self.pending_records)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # also releases the flock
            self._fd = None

    @property
    def pending_bytes(self) -> int:
        return self._size - self._offset

    # ---- writing ---------------------------------------------------------------------------------

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Append rows and fsync; raises ``OSError``/``SpoolError`` if they could not be made durable."""
        self.append_lines([json.dumps(r, separators=(",", ":")) for r in rows])

    def append_lines(self, lines: list[str]) -> None:
        """``append`` for rows already JSON texts of one line each (the decision log's queue holds them so)."""
        fd = self._require_fd()
        data = "".join(line + "\n" for line in lines).encode()
        if self.pending_bytes + len(data) > self.max_bytes:
            raise SpoolError(f"spool would exceed GATE_SPOOL_MAX_BYTES ({self.max_bytes} bytes)")
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError:
            # A partial line at the end would corrupt the next append: cut back to the last good size.
            os.ftruncate(fd, self._size)
            raise
        self._size += len(data)
        self.pending_records += len(lines)

    def reject(self, lines: list[str], reason: str) -> None:
        """Keep rows Postgres refused as data (not as an outage) aside for an operator, with the reason."""
        fd = os.open(self.rejected_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            payload = "".join(json.dumps({"reason": reason, "row": line}) + "\n" for line in lines)
            os.write(fd, payload.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    # ---- replay ----------------------------------------------------------------------------------

    def read_chunk(self, limit: int) -> tuple[list[dict[str, Any]], list[str], int]:
        """Up to ``limit`` rows from the replay offset: (rows, unparseable lines, offset after them)."""
        rows: list[dict[str, Any]] = []
        bad: list[str] = []
        offset = self._offset
        with open(self.path, "rb") as f:
            f.seek(offset)
            while len(rows) + len(bad) < limit and offset < self._size:
                line = f.readline()
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                try:
                    value = json.loads(line)
                except ValueError:
                    bad.append(line.decode("utf-8", "replace").rstrip("\n"))
                    continue
                if isinstance(value, dict):
                    rows.append(value)
                else:
                    bad.append(line.decode("utf-8", "replace").rstrip("\n"))
        return rows, bad, offset

    def commit(self, offset: int, count: int) -> None:
        """Postgres holds everything before ``offset``: advance, and empty the file once all is replayed."""
        fd = self._require_fd()
        if offset >= self._size:
            # Offset first, then truncate: a crash in between replays the file again (harmless, deduped).
            self._write_offset(0)
            os.ftruncate(fd, 0)
            os.fsync(fd)
            self._size = self._offset = 0
            self.pending_records = 0
            return
        self._write_offset(offset)
        self._offset = offset
        self.pending_records = max(0, self.pending_records - count)

    def adopt(self, directory: Path) -> int:
        """Move every unreplayed row of the spool in ``directory`` (left by a worker that no longer
        runs) into this one, and remove its files once emptied. Returns how many rows moved.

        Appended here (fsynced) before the other's offset advances: a crash in between leaves rows in
        both, and replay keeps one of each (inserts are idempotent on id)."""
        other = Spool(directory, self.max_bytes)
        other.open()
        moved = 0
        try:
            while True:
                rows, bad, offset = other.read_chunk(ADOPT_CHUNK)
                if not rows and not bad:
                    break
                if rows:
                    self.append(rows)
                if bad:
                    self.reject(bad, f"unparseable line in {other.path}")
                other.commit(offset, len(rows) + len(bad))
                moved += len(rows)
            if other.pending_bytes == 0:
                other.path.unlink(missing_ok=True)
                other.offset_path.unlink(missing_ok=True)
        finally:
            other.close()
        return moved

    # ---- helpers ---------------------------------------------------------------------------------

    def _require_fd(self) -> int:
        if self._fd is None:
            raise SpoolError("spool is not open")
        return self._fd

    def _repair_torn_tail(self) -> None:
        """A crash mid-append can leave a partial last line (never fsynced, never acknowledged)."""
        if self._size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(max(0, self._size - 65536))
            tail = f.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        if cut >= 0:
            keep = self._size - len(tail) + cut + 1
        elif self._size > len(tail):
            keep = self._find_last_newline()
        else:
            keep = 0
        log.warning("spool %s: dropping a torn last line (%d bytes)", self.path, self._size - keep)
        os.ftruncate(self._require_fd(), keep)
        self._size = keep

    def _find_last_newline(self) -> int:
        last = 0
        pos = 0
        with open(self.path, "rb") as f:
            for line in f:
                pos += len(line)
                if line.endswith(b"\n"):
                    last = pos
        return last

    def _count_lines(self, start: int) -> int:
        count = 0
        with open(self.path, "rb") as f:
            f.seek(start)
            while chunk := f.read(1 << 20):
                count += chunk.count(b"\n")
        return count

    def _read_offset(self) -> int:
        try:
            text = self.offset_path.read_text().strip()
        except FileNotFoundError:
            return 0
        return int(text) if text.isdigit() else 0

    def _write_offset(self, offset: int) -> None:
        tmp = self.offset_path.with_suffix(".offset.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, str(offset).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.offset_path)
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def spool_dir(data_dir: Path) -> Path:
    """Where the gate whose data directory is ``data_dir`` keeps its outage spool."""
    return data_dir / "spool"
