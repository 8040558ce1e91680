"""What a local bank reload added: the hashes in the new snapshot that the old one did not hold (by
value: a row that only moved is not new), with the bank row that holds each. A retro-hunt matches only
these against the stored hashes. PDQ and the exact types; pHash/dHash are not kept per decision in a
form worth re-matching, so they are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gate.matching.bank_columns import Entry
from gate.matching.bank_set import BankSet
from gate.signals import SignalType

EXACT = (SignalType.SHA256, SignalType.MD5, SignalType.SHA1, SignalType.CID)


@dataclass(frozen=True, slots=True)
class BankDiff:
    exact: dict[SignalType, dict[str, list[Entry]]]  # value → the rows that hold it
    pdq_words: npt.NDArray[np.uint64]  # (4, m) word-major
    pdq_entries: list[Entry]  # row of pdq_words[:, i]
    pdq_hexes: list[str]

    def __len__(self) -> int:
        return len(self.pdq_entries) + sum(len(v) for v in self.exact.values())

    def without(self, banks: frozenset[str]) -> BankDiff:
        """The same less entries of ``banks`` (allowlists: known-good additions judge nothing)."""
        keep = [i for i, e in enumerate(self.pdq_entries) if e[0] not in banks]
        exact = {
            s: {v: [e for e in es if e[0] not in banks] for v, es in d.items()} for s, d in self.exact.items()
        }
        return BankDiff(
            {s: {v: es for v, es in d.items() if es} for s, d in exact.items()},
            np.ascontiguousarray(self.pdq_words[:, keep]),
            [self.pdq_entries[i] for i in keep],
            [self.pdq_hexes[i] for i in keep],
        )


def added(old: BankSet | None, new: BankSet) -> BankDiff:
    """Entries of ``new`` whose hash ``old`` did not have (all of them when ``old`` is None).

    Only the files whose content changed are read (a reload keeps the others as they were), and
    membership is one vectorised ``isin`` per type against every old file's hashes, so a 10M-row list
    beside the changed one costs nothing but its keys."""
    kept = {p.digest for p in old.parts} if old is not None else set()
    changed = [p for p in new.parts if p.digest not in kept]
    before = old.parts if old is not None else ()
    exact: dict[SignalType, dict[str, list[Entry]]] = {s: {} for s in EXACT}
    for signal in EXACT:
        for part in changed:
            held = part.exact.get(signal)
            if held is None:
                continue
            if held.index is None:  # CIDs: text rows
                for value, rows in held.texts.items():
                    if old is None or not old.exact(signal, value):
                        exact[signal].setdefault(value, []).extend(held.origin.entry(i) for i in rows)
                continue
            keys = _keys(held.index.digests)
            olds = [
                _keys(e.index.digests) for q in before if (e := q.exact.get(signal)) and e.index is not None
            ]
            fresh = np.flatnonzero(~np.isin(keys, np.concatenate(olds))) if olds else np.arange(keys.size)
            for j in fresh:
                value = bytes(keys[j]).hex()
                exact[signal].setdefault(value, []).append(held.origin.entry(int(held.index.order[j])))
    old_rows = [
        _keys(q.perceptual[SignalType.PDQ].index.rows) for q in before if SignalType.PDQ in q.perceptual
    ]
    words: list[npt.NDArray[np.uint64]] = []
    entries: list[Entry] = []
    for part in changed:
        pdq = part.perceptual.get(SignalType.PDQ)
        if pdq is None or not len(pdq.index):
            continue
        hashes = pdq.index.rows  # row-major: one hash per row
        keys = _keys(hashes)
        fresh = np.flatnonzero(~np.isin(keys, np.concatenate(old_rows))) if old_rows else np.arange(keys.size)
        words.append(hashes[fresh].T)
        entries.extend(pdq.entry(int(i)) for i in fresh)
    joined = np.ascontiguousarray(np.concatenate(words, axis=1)) if words else np.zeros((4, 0), np.uint64)
    hexes = [b"".join(int(w).to_bytes(8, "big") for w in joined[:, j]).hex() for j in range(joined.shape[1])]
    return BankDiff({s: v for s, v in exact.items()}, joined, entries, hexes)


def _keys(rows: npt.NDArray[np.uint8] | npt.NDArray[np.uint64]) -> npt.NDArray[np.bytes_]:
    """Each row as one fixed-width bytes value, for vectorised set membership."""
    contiguous = np.ascontiguousarray(rows)
    width = contiguous.shape[1] * contiguous.dtype.itemsize if contiguous.ndim == 2 else 0
    if not contiguous.size:
        return np.zeros(0, dtype="S1")
    return contiguous.view(f"S{width}").ravel()
