"""``LocalBanks``: the operator's own hash lists (``<banks dir>/*.csv``), matched in process.

The whole bank set is one immutable snapshot (``gate.matching.bank_set``) swapped atomically on reload,
so a match never sees half a reload. A reload that fails (a file unreadable, or a bank that had hashes
now yielding none but invalid rows — a broken save) keeps the last good snapshot and says so; it never
leaves the gate with silently empty banks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from gate import metrics
from gate.matching.bank_cache import BankCache
from gate.matching.bank_set import BankError, BankSet, bank_files, broken_banks, build_bank_set
from gate.matching.matcher import Matcher
from gate.policy.plan import Lookup, Plan
from gate.signals import MatchSource, SignalType
from gate.types import Hashes, Match, MatcherFailure, MatchResult, Variant
from gate.watch import Stamp, every

log = logging.getLogger(__name__)

MAX_MATCHES = 1000  # per signal type and upload: a max_distance of 256 must not return a whole bank
THREAD_THRESHOLD = 50_000  # perceptual hashes above which a query runs off the event loop
LOGGED_PROBLEMS = 1000  # invalid rows logged one by one per file; beyond that a count


class LocalBanks:
    """The Matcher over the CSV banks in one directory (bank name = file name without ``.csv``)."""

    name: str = MatchSource.LOCAL

    def __init__(self, directory: str | Path, cache: BankCache | None = None) -> None:
        self.directory = Path(directory)
        self.cache = cache  # large sets indexed once per content (gate.matching.bank_cache)
        self._set: BankSet | None = None
        self._files = bank_files(self.directory)
        self._failed_signature: Stamp | None = None
        # Told (old, new) after each reload: a retro-hunt matches what the new snapshot added.
        self.reloaded: list[Callable[[BankSet, BankSet], None]] = []

    @property
    def banks(self) -> BankSet:
        if self._set is None:
            raise RuntimeError("LocalBanks.load() has not run")
        return self._set

    def load(self) -> None:
        """Initial load (synchronous, at start-up). Raises ``BankError`` so the gate stops loudly."""
        self._install(self._build())

    def version(self) -> str:
        return self.banks.version

    def _build(self) -> BankSet:
        """The directory's banks: unchanged files as they are, the rest from the cache when it holds their
        content, else read (and cached when large)."""
        cache = self.cache
        new = build_bank_set(self.directory, self._set, cache.find if cache is not None else None)
        if cache is None:
            return new
        parts = []
        for built in new.parts:
            part = built
            if built.rows >= cache.min_rows and not cache.holds(built.digest) and cache.save(built):
                # Served from the files just written: the built arrays' memory goes when this returns.
                part = cache.find(built.filename, built.digest) or built
            parts.append(part)
        cache.prune({p.digest for p in parts})
        return replace(new, parts=tuple(parts))

    def names(self) -> frozenset[str]:
        return self.banks.names

    @property
    def problems(self) -> tuple[str, ...]:
        return self.banks.problems

    def _install(self, new: BankSet) -> None:
        skipped = dict.fromkeys(new.names | (self._set.names if self._set else frozenset()), 0)
        for file in {p.split(":", 1)[0] for p in new.problems}:
            rows = [p for p in new.problems if p.startswith(f"{file}:")]
            for problem in rows[:LOGGED_PROBLEMS]:
                log.warning("bank row skipped: %s", problem)
            if len(rows) > LOGGED_PROBLEMS:
                log.warning("bank %s: %d more invalid rows skipped", file, len(rows) - LOGGED_PROBLEMS)
            metrics.BANK_INVALID_ROWS.labels(bank=file.removesuffix(".csv")).inc(len(rows))
            skipped[file.removesuffix(".csv")] = len(rows)
        for bank, count in skipped.items():  # a bank gone is set to 0, not left at its last count
            metrics.BANK_SKIPPED_ROWS.labels(bank=bank).set(count)
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
            new = await asyncio.to_thread(self._build)
            broken = broken_banks(self.banks, new)
            if broken:
                raise BankError(f"bank(s) {', '.join(broken)} would be emptied: every row is invalid")
        except BankError as exc:
            self._failed_signature = signature
            metrics.BANK_RELOADS.labels(result="error").inc()
            metrics.BANK_RELOAD_OK.set(0)
            log.error("local banks not reloaded, keeping version %s: %s", self.banks.version, exc)
            return False
        old = self.banks
        self._install(new)
        metrics.BANK_RELOADS.labels(result="ok").inc()
        metrics.BANK_RELOAD_OK.set(1)
        for listener in self.reloaded:
            listener(old, new)
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
            size = sum(len(p.index) for s in lookup.max_distance for p in snapshot.perceptual(s))
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
        for bank, filename, line, label in snapshot.exact(signal, value)
    ]


def _near(snapshot: BankSet, hashes: Hashes, signal: SignalType, limit: int) -> list[Match]:
    # entry -> (closest distance, the query hash that got it); an entry is (part, row)
    best: dict[tuple[int, int], tuple[int, str]] = {}
    parts = snapshot.perceptual(signal)
    for query in signal.facts.values(hashes):
        for k, part in enumerate(parts):
            idx, dist = part.index.search(query, limit)
            for i, d in zip(idx.tolist(), dist.tolist(), strict=True):
                if (k, i) not in best or d < best[(k, i)][0]:
                    best[(k, i)] = (d, query)

    def rank(item: tuple[tuple[int, int], tuple[int, str]]) -> tuple[int, int, int]:
        (k, i), (d, _) = item
        return d, k, int(parts[k].origin.line_of[i])  # closest first, then by file and line

    found = []
    for (k, i), (d, query) in sorted(best.items(), key=rank)[:MAX_MATCHES]:
        bank, filename, line, label = parts[k].entry(i)
        frame, variant = _origin(hashes, signal, query)
        found.append(
            Match(MatchSource.LOCAL, bank, signal, d, f"{filename}:{line}", label, query, frame, variant)
        )
    return found


if TYPE_CHECKING:  # LocalBanks satisfies the Matcher protocol (checked by mypy, free at run time)
    _matcher: Matcher = LocalBanks(".")
