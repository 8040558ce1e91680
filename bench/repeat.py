"""Nothing paid twice (issue 18, target 2): a repeat of the same bytes under the same policy and bank
versions, from the same credential (a DPoP-nonce retry), against a bare SHA-256 of the same bytes.

In process, no HTTP: the gate's ``Judge`` with its real ``Hasher`` (one worker process) and a local
bank of 10k PDQ hashes + the SHA-256 of nothing uploaded. Per body, the median over ``rounds`` of:
the first judgement (hashed, matched, evaluated; caches emptied before each round), the same
credential's repeat (the target: ≤ 1 ms + 0.6 ms/MB, answered after a SHA-256 and before decoding),
another credential's upload of the same bytes (hashed for it; the shared verdict cache then spares the
matching), and ``hashlib.sha256`` of the bytes alone (the peer, measured in the same run).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import corpus
from bench.report import Report
from gate.hashing.hasher import Hasher
from gate.judge import Context, Judge
from gate.types import DecisionSource
from tests.support.judge import local_judge

POLICY = """
on_unhashable = "quarantine"
on_unscannable = "forward"
on_matcher_error = "quarantine"
on_log_failure = "forward"
[[rules]]
name = "banned"
source = "local"
banks = ["block"]
signal_types = ["sha256", "pdq"]
max_distance = 31
action = "reject"
"""


def bodies(quick: bool) -> list[tuple[str, bytes]]:
    photo = corpus.photos(1)[0][0]
    found = [(f"12 MP {fmt}", corpus.sample(photo, "12MP", fmt, 1).body) for fmt in ("JPEG", "PNG")]
    if not quick:
        found.append(("1024 px JPEG", corpus.sample(photo, "1024px", "JPEG", 1).body))
    found.append(("32 MB not an image", os.urandom(32 << 20)))
    return found


@dataclass(frozen=True)
class Row:
    upload: str
    size: int
    first: float
    repeat: float
    sha256: float
    other: float

    @property
    def budget(self) -> float:
        """The target: 1 ms + 0.6 ms per MB."""
        return 1.0 + 0.6 * self.size / 2**20

    def cells(self) -> dict[str, object]:
        return {
            "upload": self.upload,
            "MB": self.size / 2**20,
            "first judgement ms": self.first,
            "repeat, same credential ms": self.repeat,
            "SHA-256 alone ms": self.sha256,
            "repeat / SHA-256": f"{self.repeat / self.sha256:.2f}×",
            "target ms": self.budget,
            "same bytes, another credential ms": self.other,
        }


async def _measure(quick: bool, rounds: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        judge, hasher = await _judge(Path(tmp))
        out = []
        try:
            for label, body in bodies(quick):
                first, repeat, other, sha = [], [], [], []
                for i in range(rounds):
                    judge.cache.clear()
                    judge.repeats.clear()
                    alice, bob = f"alice-{i}".encode(), f"bob-{i}".encode()
                    first.append(await _judged_ms(judge, body, alice))
                    repeat.append(await _judged_ms(judge, body, alice))
                    other.append(await _judged_ms(judge, body, bob))
                    started = time.perf_counter()
                    hashlib.sha256(body).hexdigest()
                    sha.append((time.perf_counter() - started) * 1000)
                medians = (statistics.median(x) for x in (first, repeat, sha, other))
                out.append(Row(label, len(body), *medians))
        finally:
            await hasher.close()
        return out


async def _judge(tmp: Path) -> tuple[Judge, Hasher]:
    rng = np.random.default_rng(18)
    rows = [f"pdq,{bytes(h).hex()}" for h in rng.integers(0, 256, size=(10_000, 32), dtype=np.uint8)]
    rows.append(f"sha256,{hashlib.sha256(b'never uploaded').hexdigest()}")
    hasher = Hasher(workers=1)
    await hasher.warm_up()
    built = await local_judge(tmp, POLICY, rows, hasher, cache_size=4096, cache_ttl=3600)
    return built.judge, hasher


async def _judged_ms(judge: Judge, body: bytes, scope: bytes) -> float:
    started = time.perf_counter()
    await judge.judge(body, Context(DecisionSource.UPLOAD, repeat_scope=scope))
    return (time.perf_counter() - started) * 1000


def run(report: Report, quick: bool) -> None:
    rows = asyncio.run(_measure(quick, rounds=5 if quick else 15))
    table = report.table(
        "Nothing paid twice: a repeat of the same bytes vs a bare SHA-256 (in process, one hashing worker)",
        list(rows[0].cells()),
        note="The same credential's repeat (a DPoP-nonce retry) is answered after a SHA-256, before "
        "any decoding; another credential's upload of the same bytes is hashed for it (the shared "
        "verdict cache spares only the matching). Medians; caches emptied before each round.",
    )
    for row in rows:
        table.add(**row.cells())
    worst = max(rows, key=lambda r: r.repeat / r.budget)
    report.target(
        "repeat of the same bytes (same credential and versions), answered after a SHA-256 only",
        "≤ 1 ms + 0.6 ms/MB",
        f"{worst.upload}: {worst.repeat:.2f} ms (SHA-256 alone {worst.sha256:.2f} ms, budget "
        f"{worst.budget:.2f} ms; first judgement {worst.first:.1f} ms)",
        all(r.repeat <= r.budget for r in rows),
        issue=18,
    )
