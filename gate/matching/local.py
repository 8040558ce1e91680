"""``LocalBanks``: the operator's own hash lists (``<banks dir>/*.csv``), matched in process.

Exact hashes live in dicts (O(1) per upload); perceptual ones in a ``HammingIndex``. The whole bank set
is one immutable snapshot swapped atomically on reload, so a match never sees half a reload. A reload
that fails (a file unreadable, or a bank that had hashes now yielding none but invalid rows — a broken
save) keeps the last good snapshot and says so; it never leaves the gate with silently empty banks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from gate import metrics
from gate.errors import ConfigError
from gate.matching.bank_file import LOCAL, BankFile, BankFileError, read_bank_file
from gate.matching.matcher import Matcher
from gate.matching.pdq_index import HammingIndex
from gate.policy.plan import Lookup, Plan
from gate.signals import MatchSource, SignalType
from gate.types import Hashes, Match, MatcherFailure, MatchResult, Variant
from gate.watch import FileWatch, Stamp, every

log = logging.getLogger(__name__)

EXACT = tuple(s for s in LOCAL if s.exact)  # in dicts
PERCEPTUAL = tuple(s for s in LOCAL if not s.exact)  # in Hamming indexes
MAX_MATCHES = 1000  # per signal type and upload: a max_distance of 256 must not return a whole bank
THREAD_THRESHOLD = 50_000  # perceptual hashes above which a query runs off the event loop
LOGGED_PROBLEMS = 1000  # invalid rows logged one by one per file; beyond that a count


class BankError(ConfigError):
    """The bank directory (or a file in it) cannot be loaded."""


# One bank row, as reported in a match: (bank, file name, line, label).
_Entry = tuple[str, str, int, str | None]


@dataclass(slots=True)
class _Perceptual:
    """Hashes of one perceptual type, with where each came from in compact parallel columns.

    Columns rather than one tuple per row: a 1M-hash bank would otherwise hold ~100 MB of small objects.
    """

    index: HammingIndex
    files: list[tuple[str, str]]  # (bank, file name) by file number
    file_of: npt.NDArray[np.int32]
    line_of: npt.NDArray[np.int32]
    labels: list[str | None]  # interned: bank labels repeat ("source X") across many rows

    def entry(self, i: int) -> _Entry:
        bank, filename = self.files[int(self.file_of[i])]
        return bank, filename, int(self.line_of[i]), self.labels[i]


@dataclass(slots=True)
class BankSet:
    """One immutable snapshot of every local bank."""

    version: str
    names: frozenset[str]
    exact: dict[SignalType, dict[str, list[_Entry]]]
    perceptual: dict[SignalType, _Perceptual]
    counts: dict[str, dict[SignalType, int]]
    problems: tuple[str, ...] = ()
    signature: Stamp = field(default=())


def _bank_files(directory: Path) -> FileWatch:
    return FileWatch(directory, "*.csv")


def build_bank_set(directory: Path) -> BankSet:
    """Read every bank file. Raises ``BankError`` when a whole file or the directory is unreadable."""
    if not directory.is_dir():
        raise BankError(f"banks directory {directory} does not exist")
    signature = _bank_files(directory).look() or ()
    files: list[BankFile] = []
    problems: list[str] = []
    for name, *_ in signature:
        try:
            files.append(read_bank_file(directory / name))
        except BankFileError as exc:
            problems.append(str(exc))
    if problems:
        raise BankError("; ".join(problems))
    fingerprint = hashlib.sha256()
    exact: dict[SignalType, dict[str, list[_Entry]]] = {s: defaultdict(list) for s in EXACT}
    hexes: dict[SignalType, list[str]] = {s: [] for s in PERCEPTUAL}
    origin: dict[SignalType, tuple[list[int], list[int], list[str | None]]] = {
        s: ([], [], []) for s in PERCEPTUAL
    }
    interned: dict[str, str] = {}
    counts: dict[str, dict[SignalType, int]] = {}
    for number, bank in enumerate(files):
        fingerprint.update(f"{bank.filename}\0{len(bank.content)}\0".encode())
        fingerprint.update(bank.content)
        problems.extend(bank.problems)
        per_signal: dict[SignalType, int] = defaultdict(int)
        for row in bank.rows:
            per_signal[row.signal] += 1
            if not row.signal.exact:
                file_of, line_of, labels = origin[row.signal]
                labels.append(interned.setdefault(row.label, row.label) if row.label else None)
                hexes[row.signal].append(row.hash)
                file_of.append(number)
                line_of.append(row.line)
            else:
                exact[row.signal][row.hash].append((bank.name, bank.filename, row.line, row.label))
        counts[bank.name] = dict(per_signal)
    names = [(b.name, b.filename) for b in files]
    perceptual = {
        s: _Perceptual(
            HammingIndex(hexes[s], s.facts.bits),
            names,
            np.array(origin[s][0], dtype=np.int32),
            np.array(origin[s][1], dtype=np.int32),
            origin[s][2],
        )
        for s in PERCEPTUAL
    }
    return BankSet(
        version=fingerprint.hexdigest()[:16],
        names=frozenset(b.name for b in files),
        exact={s: dict(d) for s, d in exact.items()},
        perceptual=perceptual,
        counts=counts,
        problems=tuple(problems),
        signature=signature,
    )


def _broken_banks(old: BankSet, new: BankSet) -> list[str]:
    """Banks that had hashes and now load none while rows were rejected: a broken save, not a wipe."""
    broken = []
    for bank, counts in old.counts.items():
        emptied = sum(counts.values()) and not sum(new.counts.get(bank, {}).values())
        if emptied and any(p.startswith(f"{bank}.csv:") for p in new.problems):
            broken.append(bank)
    return broken


class LocalBanks:
    """The Matcher over the CSV banks in one directory (bank name = file name without ``.csv``)."""

    name: str = MatchSource.LOCAL

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._set: BankSet | None = None
        self._files = _bank_files(self.directory)
        self._failed_signature: Stamp | None = None

    @property
    def banks(self) -> BankSet:
        if self._set is None:
            raise RuntimeError("LocalBanks.load() has not run")
        return self._set

    def load(self) -> None:
        """Initial load (synchronous, at start-up). Raises ``BankError`` so the gate stops loudly."""
        self._install(build_bank_set(self.directory))

    def version(self) -> str:
        return self.banks.version

    def names(self) -> frozenset[str]:
        return self.banks.names

    @property
    def problems(self) -> tuple[str, ...]:
        return self.banks.problems

    def _install(self, new: BankSet) -> None:
        for file in {p.split(":", 1)[0] for p in new.problems}:
            rows = [p for p in new.problems if p.startswith(f"{file}:")]
            for problem in rows[:LOGGED_PROBLEMS]:
                log.warning("bank row skipped: %s", problem)
            if len(rows) > LOGGED_PROBLEMS:
                log.warning("bank %s: %d more invalid rows skipped", file, len(rows) - LOGGED_PROBLEMS)
            metrics.BANK_INVALID_ROWS.labels(bank=file.removesuffix(".csv")).inc(len(rows))
        metrics.BANK_SIZE.clear()
        for bank, counts in new.counts.items():
            for signal, count in counts.items():
                metrics.BANK_SIZE.labels(bank=bank, signal=signal.value).set(count)
        if self._set is not None:
            for gone in sorted(self._set.names - new.names):
                log.warning("local bank %r removed: its file is gone from %s", gone, self.directory)
        self._set = new
        self._failed_signature = None
        total = sum(sum(c.values()) for c in new.counts.values())
        log.info("local banks %s loaded: %d hashes in %d bank(s)", new.version, total, len(new.names))

    async def reload_if_changed(self) -> bool:
        """Reload when any ``*.csv`` changed (mtime, size, inode, added, removed); True if reloaded."""
        signature = await asyncio.to_thread(self._files.look) or ()
        if signature in (self.banks.signature, self._failed_signature):
            return False
        try:
            new = await asyncio.to_thread(build_bank_set, self.directory)
            broken = _broken_banks(self.banks, new)
            if broken:
                raise BankError(f"bank(s) {', '.join(broken)} would be emptied: every row is invalid")
        except BankError as exc:
            self._failed_signature = signature
            metrics.BANK_RELOADS.labels(result="error").inc()
            log.error("local banks not reloaded, keeping version %s: %s", self.banks.version, exc)
            return False
        self._install(new)
        metrics.BANK_RELOADS.labels(result="ok").inc()
        return True

    async def watch(
        self, interval: float = 2.0, on_change: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        """Check the directory every ``interval`` seconds until cancelled; ``on_change`` runs after each
        reload."""

        async def step() -> None:
            if await self.reload_if_changed() and on_change is not None:
                await on_change()

        await every(interval, step, what="local bank watch")

    async def match(self, hashes: Hashes, plan: Plan) -> MatchResult:
        snapshot, lookup = self.banks, plan.local
        try:
            size = sum(len(snapshot.perceptual[s].index) for s in lookup.max_distance)
            if size > THREAD_THRESHOLD:
                matches = await asyncio.to_thread(_match, snapshot, hashes, lookup)
            else:
                matches = _match(snapshot, hashes, lookup)
        except Exception as exc:  # a matcher never raises for an upload; the policy decides
            log.exception("local bank match failed")
            return MatchResult(failures=(MatcherFailure(self.name, "error", type(exc).__name__),))
        return MatchResult(matches=tuple(matches))


def _origin(hashes: Hashes, signal: SignalType, query: str) -> tuple[int | None, Variant | None]:
    """Which frame, and which variant, the matching query hash is of (pHash/dHash: the first frame)."""
    if signal is not SignalType.PDQ:
        return 0, Variant.STORED
    origin = hashes.pdq_origin(query)
    return (origin.frame, origin.variant) if origin else (None, None)


def _match(snapshot: BankSet, hashes: Hashes, lookup: Lookup) -> list[Match]:
    found: list[Match] = []
    for signal in lookup.signals:
        if signal.exact:
            found += _equal(snapshot, hashes, signal)
        else:
            found += _near(snapshot, hashes, signal, lookup.max_distance[signal])
    return found


def _equal(snapshot: BankSet, hashes: Hashes, signal: SignalType) -> list[Match]:
    return [
        Match(MatchSource.LOCAL, bank, signal, None, f"{filename}:{line}", label, value)
        for value in signal.facts.values(hashes)
        for bank, filename, line, label in snapshot.exact[signal].get(value, [])
    ]


def _near(snapshot: BankSet, hashes: Hashes, signal: SignalType, limit: int) -> list[Match]:
    part = snapshot.perceptual[signal]
    if not len(part.index):
        return []
    best: dict[int, tuple[int, str]] = {}  # entry -> (closest distance, the query hash that got it)
    for query in signal.facts.values(hashes):
        idx, dist = part.index.search(query, limit)
        for i, d in zip(idx.tolist(), dist.tolist(), strict=True):
            if i not in best or d < best[i][0]:
                best[i] = (d, query)
    found = []
    for i, (d, query) in sorted(best.items(), key=lambda item: (item[1][0], item[0]))[:MAX_MATCHES]:
        bank, filename, line, label = part.entry(i)
        frame, variant = _origin(hashes, signal, query)
        found.append(
            Match(MatchSource.LOCAL, bank, signal, d, f"{filename}:{line}", label, query, frame, variant)
        )
    return found


if TYPE_CHECKING:  # LocalBanks satisfies the Matcher protocol (checked by mypy, free at run time)
    _matcher: Matcher = LocalBanks(".")
