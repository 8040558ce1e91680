"""``Allowlist``: a released false positive's SHA-256 appended to the policy's first allowlist bank file.

Why the bank file and not a table: the policy already says what an allowlist means (an exact hit
forwards, whatever else matched) and ``evaluate`` stays pure; the operator's reviewed false positives
live in one place, in the format they already edit and diff; and the bank reload that every replica runs
picks the row up. The row is reloaded at once here so the uploader's retry passes on this replica
without waiting for the next poll. (Replicas on separate disks need the banks directory shared or synced
— the same as for every other bank.)
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from gate.matching.local import LocalBanks
from gate.policy.reload import PolicyHolder

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LABEL_SAFE = re.compile(r"[^A-Za-z0-9_.@:-]")


class AllowlistUnavailable(RuntimeError):
    """No allowlist bank in the policy, or its file cannot be written; the message says which."""


class Allowlist:
    def __init__(self, banks_dir: Path, policy: PolicyHolder, banks: LocalBanks) -> None:
        self.banks_dir = banks_dir
        self._policy = policy
        self._banks = banks
        self._lock = asyncio.Lock()

    def bank(self) -> str:
        names = sorted(self._policy.current.allowlist_banks)
        if not names:
            raise AllowlistUnavailable(
                'the policy has no allowlist_banks: add one (e.g. allowlist_banks = ["allowlist"]) '
                "so a released upload can pass on retry"
            )
        return names[0]

    async def add_sha256(self, sha256: str, decision_id: str, actor: str) -> str:
        """Append ``sha256,<hex>,<label>`` and reload the banks; returns the bank name."""
        if not _SHA256.match(sha256):
            raise ValueError("not a lowercase hex SHA-256")
        bank = self.bank()
        path = self.banks_dir / f"{bank}.csv"
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        label = f"released {_LABEL_SAFE.sub('_', decision_id)} by {_LABEL_SAFE.sub('_', actor)} {when}"
        async with self._lock:
            try:
                await asyncio.to_thread(_append, path, f"sha256,{sha256},{label}\n")
            except OSError as exc:
                raise AllowlistUnavailable(f"cannot append to {path}: {exc.strerror or exc}") from None
            await self._banks.reload_if_changed()
        return bank


def _append(path: Path, row: str) -> None:
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        if size:
            # A hand-edited file may lack its last newline: never glue our row onto the operator's.
            last = os.pread(fd, 1, size - 1)
            if last != b"\n":
                row = "\n" + row
        os.write(fd, row.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
