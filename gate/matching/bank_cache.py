"""``BankCache``: large bank files kept on disk once indexed, keyed by the SHA-256 of each file.

Reading and indexing ten million PDQ hashes takes tens of seconds; mapping the arrays that indexing made
takes about a second. A file of ``CACHE_FROM`` rows or more is written to ``<cache>/<file's SHA-256>/``
once (any change of content is a new entry; a touched or renamed file is not) and is then served from
those files, mapped read-only: pages are read as queries touch them, they are the kernel's to evict and
re-read, and every gate process on the host mapping the same entry shares them. A reload therefore
holds a changed file's anonymous memory only while it is indexed; once written, it is mapped like the
rest, and the old part is unmapped when no match uses it any more.

The cache holds hashes and where they came from, as the bank files themselves do (no upload bytes);
it lives in the gate's data directory. Entries are written to a temporary directory and renamed into
place, so a half-written entry is never read, and two processes building the same entry both succeed.
Entries of files no longer in the banks are removed (a process still mapping one keeps its pages).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gate.matching.bank_columns import Provenance
from gate.matching.bank_set import EXACT, PERCEPTUAL, BankPart, Exact, Perceptual
from gate.matching.exact_index import ExactIndex
from gate.matching.pdq_index import HammingIndex
from gate.signals import SignalType

log = logging.getLogger(__name__)

CACHE_FROM = 100_000  # rows: below this, reading the files is already quick
FORMAT = 1


class BankCache:
    def __init__(self, directory: Path, min_rows: int = CACHE_FROM) -> None:
        self.directory = directory
        self.min_rows = min_rows  # smaller files are read every time

    def holds(self, digest: str) -> bool:
        return (self.directory / digest / "part.json").is_file()

    def find(self, filename: str, digest: str) -> BankPart | None:
        """The part cached for a file with SHA-256 ``digest``, its arrays mapped; None when there is no
        usable entry."""
        entry = self.directory / digest
        if not (entry / "part.json").is_file():
            return None
        try:
            part = _load(entry, digest)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("bank cache entry %s unusable (%s): the bank is read from its file", entry, exc)
            return None
        return part if part.filename == filename else part.renamed(filename)

    def save(self, part: BankPart) -> bool:
        """Write ``part``'s entry; False (logged) when the cache directory is not writable."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".building-", dir=self.directory))
            try:
                _save(staging, part)
                os.rename(staging, self.directory / part.digest)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                if not self.holds(part.digest):
                    raise  # not another process's finished entry: a real failure
        except OSError as exc:
            log.warning("bank cache %s not written: %s", self.directory, exc)
            return False
        return True

    def prune(self, keep: set[str]) -> None:
        """Remove entries of files no longer in the banks (a process still mapping one keeps its pages)."""
        if not self.directory.is_dir():
            return
        for entry in self.directory.iterdir():
            if entry.name not in keep and not entry.name.startswith(".building-"):
                shutil.rmtree(entry, ignore_errors=True)


def _save(entry: Path, part: BankPart) -> None:
    meta: dict[str, Any] = {
        "format": FORMAT,
        "filename": part.filename,
        "counts": {s.value: n for s, n in part.counts.items()},
        "problems": list(part.problems),
        "exact": {},
        "perceptual": [],
    }
    for signal, perceptual in part.perceptual.items():
        perceptual.index.save(entry / signal.value)
        _save_origin(entry / signal.value, perceptual.origin)
        meta["perceptual"].append(signal.value)
    for signal, exact in part.exact.items():
        where = entry / signal.value
        where.mkdir()
        _save_origin(where, exact.origin)
        if exact.index is not None:
            np.save(where / "digests.npy", exact.index.digests)
            np.save(where / "starts.npy", exact.index.starts)
            np.save(where / "order.npy", exact.index.order)
        meta["exact"][signal.value] = exact.texts if exact.index is None else None
    (entry / "part.json").write_text(json.dumps(meta))


def _save_origin(where: Path, origin: Provenance) -> None:
    np.save(where / "line_of.npy", origin.line_of)
    if origin.label_of is not None:
        np.save(where / "label_of.npy", origin.label_of)
    (where / "origin.json").write_text(json.dumps({"labels": origin.labels}))


def _load(entry: Path, digest: str) -> BankPart:
    meta = json.loads((entry / "part.json").read_text())
    if meta["format"] != FORMAT:
        raise ValueError(f"format {meta['format']}, expected {FORMAT}")
    filename: str = meta["filename"]
    name = filename.removesuffix(".csv")
    perceptual: dict[SignalType, Perceptual] = {}
    for value in meta["perceptual"]:
        signal, where = SignalType(value), entry / value
        perceptual[signal] = Perceptual(HammingIndex.load(where), _load_origin(where, name, filename))
    exact: dict[SignalType, Exact] = {}
    for value, texts in meta["exact"].items():
        signal, where = SignalType(value), entry / value
        index = None
        if texts is None:
            arrays = (np.load(where / f"{a}.npy", mmap_mode="r") for a in ("digests", "starts", "order"))
            index = ExactIndex(*arrays)
        exact[signal] = Exact(index, texts or {}, _load_origin(where, name, filename))
    if set(perceptual) != set(PERCEPTUAL) or set(exact) != set(EXACT):
        raise ValueError("signal types missing")
    counts = {SignalType(s): int(n) for s, n in meta["counts"].items()}
    return BankPart(name, filename, digest, counts, tuple(meta["problems"]), exact, perceptual)


def _load_origin(where: Path, bank: str, filename: str) -> Provenance:
    meta = json.loads((where / "origin.json").read_text())
    labels = where / "label_of.npy"
    return Provenance(
        bank,
        filename,
        np.load(where / "line_of.npy", mmap_mode="r"),
        np.load(labels, mmap_mode="r") if labels.is_file() else None,
        list(meta["labels"]),
    )
