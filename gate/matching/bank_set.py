"""``BankSet``: one immutable snapshot of every local bank file, built from a directory.

Each file becomes a ``BankPart``: its exact digests in an ``ExactIndex`` per type (O(1) per upload;
CIDs, a handful of text rows, in a dict), its perceptual hashes in a ``HammingIndex`` per type (``bits``
from ``gate.signals``), and where every row came from in compact columns (``Provenance``). A reload
reads only the files that changed and keeps the other parts as they are — a 10M-row NCMEC list is not
re-read because a 20-row list beside it was edited — and a large part is kept on disk once indexed
(``gate.matching.bank_cache``). ``LocalBanks`` swaps whole snapshots, so a match never sees half a
reload.
"""

from __future__ import annotations

import hashlib
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gate.errors import ConfigError
from gate.matching.bank_columns import Entry, Provenance
from gate.matching.bank_file import LOCAL, BankFile, BankFileError, read_bank_file
from gate.matching.exact_index import ExactIndex
from gate.matching.pdq_index import HammingIndex
from gate.signals import SignalType
from gate.watch import FileWatch, Stamp

EXACT = tuple(s for s in LOCAL if s.exact)  # in exact indexes (CIDs: a dict)
PERCEPTUAL = tuple(s for s in LOCAL if not s.exact)  # in Hamming indexes


class BankError(ConfigError):
    """The bank directory (or a file in it) cannot be loaded."""


@dataclass(slots=True)
class Perceptual:
    """Hashes of one perceptual type in one file, and where each came from."""

    index: HammingIndex
    origin: Provenance

    def entry(self, i: int) -> Entry:
        return self.origin.entry(i)


@dataclass(slots=True)
class Exact:
    """Digests (or CID texts) of one exact type in one file, and where each came from."""

    index: ExactIndex | None  # binary digests
    texts: dict[str, list[int]]  # CIDs: text → rows
    origin: Provenance

    def get(self, value: str) -> list[Entry]:
        rows = self.index.rows(value) if self.index is not None else self.texts.get(value, [])
        # By line: rows read in bulk are indexed before the odd rows of their block.
        return sorted((self.origin.entry(i) for i in rows), key=lambda entry: entry[2])

    @property
    def nbytes(self) -> int:
        return (self.index.nbytes if self.index is not None else 0) + self.origin.nbytes


@dataclass(slots=True)
class BankPart:
    """One bank file, indexed."""

    name: str  # the bank: file name without .csv
    filename: str
    digest: str  # SHA-256 of the file's bytes
    counts: dict[SignalType, int]
    problems: tuple[str, ...]
    exact: dict[SignalType, Exact]
    perceptual: dict[SignalType, Perceptual]

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def nbytes(self) -> int:
        """Bytes held by the indexes and the rows' provenance."""
        perceptual = sum(p.index.nbytes + p.origin.nbytes for p in self.perceptual.values())
        return perceptual + sum(e.nbytes for e in self.exact.values())

    def renamed(self, filename: str) -> BankPart:
        """The same content under another file name (the cache is keyed by content)."""
        name = filename.removesuffix(".csv")
        exact = {s: Exact(e.index, e.texts, _named(e.origin, name, filename)) for s, e in self.exact.items()}
        perceptual = {
            s: Perceptual(p.index, _named(p.origin, name, filename)) for s, p in self.perceptual.items()
        }
        problems = tuple(filename + p.removeprefix(self.filename) for p in self.problems)
        return BankPart(name, filename, self.digest, self.counts, problems, exact, perceptual)


def _named(origin: Provenance, bank: str, filename: str) -> Provenance:
    return Provenance(bank, filename, origin.line_of, origin.label_of, origin.labels)


@dataclass(slots=True)
class BankSet:
    """One immutable snapshot of every local bank."""

    version: str
    parts: tuple[BankPart, ...]
    signature: Stamp = field(default=())
    stamps: dict[str, tuple[object, ...]] = field(default_factory=dict)  # file name → its stamp

    @property
    def names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parts)

    @property
    def counts(self) -> dict[str, dict[SignalType, int]]:
        return {p.name: dict(p.counts) for p in self.parts}

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(problem for p in self.parts for problem in p.problems)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def perceptual(self, signal: SignalType) -> list[Perceptual]:
        return [p.perceptual[signal] for p in self.parts if len(p.perceptual[signal].index)]

    def exact(self, signal: SignalType, value: str) -> list[Entry]:
        return [entry for p in self.parts for entry in p.exact[signal].get(value)]


def bank_files(directory: Path) -> FileWatch:
    """What a reload watches: every ``*.csv`` of the directory (name, mtime, size, inode)."""
    return FileWatch(directory, "*.csv")


# How a part is found without reading its file: by content digest (e.g. from the bank cache).
Known = Callable[[str, str], BankPart | None]


def build_bank_set(directory: Path, previous: BankSet | None = None, known: Known | None = None) -> BankSet:
    """Every bank file of ``directory``, indexed. A file whose stamp (mtime, size, inode) is the one
    ``previous`` read keeps its part; another is hashed, found by ``known`` if it can be, else read.
    Raises ``BankError`` when a whole file or the directory is unreadable."""
    if not directory.is_dir():
        raise BankError(f"banks directory {directory} does not exist")
    signature = bank_files(directory).look() or ()
    reused = {p.filename: p for p in previous.parts} if previous is not None else {}
    parts: list[BankPart] = []
    stamps: dict[str, tuple[object, ...]] = {}
    problems: list[str] = []
    for stamp in signature:
        name = str(stamp[0])
        stamps[name] = tuple(stamp)
        try:
            if previous is not None and previous.stamps.get(name) == tuple(stamp) and name in reused:
                parts.append(reused[name])
                continue
            part = known(name, file_digest(directory / name)) if known is not None else None
            parts.append(part if part is not None else index_bank(read_bank_file(directory / name)))
        except BankFileError as exc:
            problems.append(str(exc))
        except OSError as exc:
            problems.append(f"{name}: cannot read: {exc.strerror or exc}")
    if problems:
        raise BankError("; ".join(problems))
    fingerprint = hashlib.sha256()
    for part in parts:
        fingerprint.update(f"{part.filename}\0{part.digest}\0".encode())
    return BankSet(fingerprint.hexdigest()[:16], tuple(parts), signature, stamps)


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def index_bank(bank: BankFile) -> BankPart:
    """``bank`` indexed; its columns are consumed (their digests freed or taken over by the indexes)."""
    exact: dict[SignalType, Exact] = {}
    for signal in EXACT:
        column = bank.columns[signal]
        origin = Provenance.of(column, bank.name, bank.filename, bank.labels)
        if column.width:
            exact[signal] = Exact(ExactIndex.build(column.digests()), {}, origin)
            column.data = bytearray()  # the index holds them sorted: 50M rows' digests are not kept twice
        else:
            texts: dict[str, list[int]] = defaultdict(list)
            for row, text in enumerate(column.texts):
                texts[text].append(row)
            exact[signal] = Exact(None, dict(texts), origin)
    perceptual = {}
    for signal in PERCEPTUAL:
        column = bank.columns[signal]
        # The column's bytes become the index's words in place: no second copy of a 10M-hash bank.
        words = np.frombuffer(column.data, dtype=np.uint64).reshape(-1, signal.facts.bits // 64)
        if sys.byteorder == "little":
            words.byteswap(inplace=True)  # big-endian words: bit 0 of the hash is the top bit of word 0
        origin = Provenance.of(column, bank.name, bank.filename, bank.labels)
        perceptual[signal] = Perceptual(HammingIndex.from_rows(words, signal.facts.bits), origin)
    return BankPart(
        bank.name, bank.filename, bank.digest, dict(bank.counts), bank.problems, exact, perceptual
    )


def broken_banks(old: BankSet, new: BankSet) -> list[str]:
    """Banks that had hashes and now load none while rows were rejected: a broken save, not a wipe."""
    broken = []
    for bank, counts in old.counts.items():
        emptied = sum(counts.values()) and not sum(new.counts.get(bank, {}).values())
        if emptied and any(p.startswith(f"{bank}.csv:") for p in new.problems):
            broken.append(bank)
    return broken
