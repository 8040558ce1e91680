"""``BankSet``: one immutable snapshot of every local bank file, built from a directory.

Exact hashes go into dicts (O(1) per upload); perceptual ones into a ``HammingIndex`` each (``bits`` from
``gate.signals``), with where every hash came from kept in compact columns. ``LocalBanks`` swaps whole
snapshots, so a match never sees half a reload.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gate.errors import ConfigError
from gate.matching.bank_file import LOCAL, BankFile, BankFileError, read_bank_file
from gate.matching.pdq_index import HammingIndex
from gate.signals import SignalType
from gate.watch import FileWatch, Stamp

EXACT = tuple(s for s in LOCAL if s.exact)  # in dicts
PERCEPTUAL = tuple(s for s in LOCAL if not s.exact)  # in Hamming indexes


class BankError(ConfigError):
    """The bank directory (or a file in it) cannot be loaded."""


# One bank row, as reported in a match: (bank, file name, line, label).
Entry = tuple[str, str, int, str | None]


@dataclass(slots=True)
class Perceptual:
    """Hashes of one perceptual type, with where each came from in compact parallel columns.

    Columns rather than one tuple per row: a 1M-hash bank would otherwise hold ~100 MB of small objects.
    """

    index: HammingIndex
    files: list[tuple[str, str]]  # (bank, file name) by file number
    file_of: npt.NDArray[np.int32]
    line_of: npt.NDArray[np.int32]
    labels: list[str | None]  # interned: bank labels repeat ("source X") across many rows

    def entry(self, i: int) -> Entry:
        bank, filename = self.files[int(self.file_of[i])]
        return bank, filename, int(self.line_of[i]), self.labels[i]


@dataclass(slots=True)
class BankSet:
    """One immutable snapshot of every local bank."""

    version: str
    names: frozenset[str]
    exact: dict[SignalType, dict[str, list[Entry]]]
    perceptual: dict[SignalType, Perceptual]
    counts: dict[str, dict[SignalType, int]]
    problems: tuple[str, ...] = ()
    signature: Stamp = field(default=())


def bank_files(directory: Path) -> FileWatch:
    """What a reload watches: every ``*.csv`` of the directory (name, mtime, size, inode)."""
    return FileWatch(directory, "*.csv")


def build_bank_set(directory: Path) -> BankSet:
    """Read every bank file. Raises ``BankError`` when a whole file or the directory is unreadable."""
    if not directory.is_dir():
        raise BankError(f"banks directory {directory} does not exist")
    signature = bank_files(directory).look() or ()
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
    exact: dict[SignalType, dict[str, list[Entry]]] = {s: defaultdict(list) for s in EXACT}
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
        s: Perceptual(
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


def broken_banks(old: BankSet, new: BankSet) -> list[str]:
    """Banks that had hashes and now load none while rows were rejected: a broken save, not a wipe."""
    broken = []
    for bank, counts in old.counts.items():
        emptied = sum(counts.values()) and not sum(new.counts.get(bank, {}).values())
        if emptied and any(p.startswith(f"{bank}.csv:") for p in new.problems):
            broken.append(bank)
    return broken
