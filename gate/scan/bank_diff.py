"""What a local bank reload added: the hashes in the new snapshot that the old one did not hold (by
value: a row that only moved is not new), with the bank row that holds each. A retro-hunt matches only
these against the stored hashes. PDQ and the exact types; pHash/dHash are not kept per decision in a
form worth re-matching, so they are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gate.matching.bank_set import BankSet, Entry
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
    """Entries of ``new`` whose hash ``old`` did not have (all of them when ``old`` is None)."""
    exact = {
        s: {
            v: list(es)
            for v, es in new.exact.get(s, {}).items()
            if old is None or v not in old.exact.get(s, {})
        }
        for s in EXACT
    }
    part = new.perceptual[SignalType.PDQ]
    rows = part.index.rows  # row-major: one hash per row
    seen: set[bytes] = set()
    if old is not None:
        seen = {r.tobytes() for r in old.perceptual[SignalType.PDQ].index.rows}
    fresh = [i for i, r in enumerate(rows) if r.tobytes() not in seen]
    words = np.ascontiguousarray(part.index.rows[fresh].T)
    hexes = [b"".join(int(w).to_bytes(8, "big") for w in words[:, j]).hex() for j in range(words.shape[1])]
    return BankDiff(exact, words, [part.entry(i) for i in fresh], hexes)
