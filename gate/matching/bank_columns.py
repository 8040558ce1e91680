"""``Column``: every bank row of one signal type, held compactly while the banks load and after.

A bank of ten million rows as Python objects (a tuple, a hash string and a label per row) would take
gigabytes; as columns it takes its hashes' bytes plus 4 bytes a row (8 with labels). Hashes of a fixed width are kept
as binary digests, side by side (``data``); CIDs, text as the PDS writes them, in ``texts``. Where each
row came from — its line and label — is ``Provenance``, reported only when a row matches.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gate.signals import SignalType

# One bank row, as reported in a match: (bank, file name, line, label).
Entry = tuple[str, str, int, str | None]


def width_of(signal: SignalType) -> int:
    """Bytes per binary hash; 0 for types held as text (CIDs)."""
    return 0 if signal is SignalType.CID else signal.facts.bits // 8


@dataclass
class Labels:
    """Label texts, each once (banks repeat "source X" across many rows); id -1 is no label."""

    texts: list[str] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)

    def id(self, label: str | None) -> int:
        if not label:
            return -1
        found = self.ids.get(label)
        if found is None:
            found = self.ids[label] = len(self.texts)
            self.texts.append(label)
        return found


@dataclass
class Column:
    """Rows of one signal type in one bank file."""

    signal: SignalType
    width: int
    data: bytearray = field(default_factory=bytearray)
    texts: list[str] = field(default_factory=list)
    lines: array[int] = field(default_factory=lambda: array("I"))
    labels: array[int] | None = None  # made on the first labelled row

    def __len__(self) -> int:
        return len(self.lines)

    def add(self, line: int, value: bytes | str, label: int) -> None:
        if isinstance(value, str):
            self.texts.append(value)
        else:
            self.data += value
        self.lines.append(line)
        self._label(label, 1)

    def extend(self, lines: npt.NDArray[np.uint32], digests: npt.NDArray[np.uint8]) -> None:
        """Many unlabelled rows at once (the bulk of a large bank)."""
        self.data += digests.tobytes()
        self.lines.frombytes(lines.astype(np.uint32).tobytes())
        self._label(-1, len(lines))

    def _label(self, label: int, count: int) -> None:
        if self.labels is None:
            if label < 0:
                return
            self.labels = array("i", [-1]) * (len(self.lines) - count)
        self.labels.extend([label] * count)

    def digests(self) -> npt.NDArray[np.uint8]:
        """``(rows, width)`` uint8, sharing the column's memory."""
        return np.frombuffer(self.data, dtype=np.uint8).reshape(-1, self.width)


@dataclass(slots=True)
class Provenance:
    """Where each row of one bank file's index came from, in the index's row order."""

    bank: str
    filename: str
    line_of: npt.NDArray[np.uint32]
    label_of: npt.NDArray[np.int32] | None
    labels: list[str]

    @classmethod
    def of(cls, column: Column, bank: str, filename: str, labels: Labels) -> Provenance:
        label_of = None if column.labels is None else np.frombuffer(column.labels, dtype=np.int32)
        return cls(bank, filename, np.frombuffer(column.lines, dtype=np.uint32), label_of, labels.texts)

    def entry(self, i: int) -> Entry:
        label = -1 if self.label_of is None else int(self.label_of[i])
        return self.bank, self.filename, int(self.line_of[i]), self.labels[label] if label >= 0 else None

    @property
    def nbytes(self) -> int:
        labels = 0 if self.label_of is None else self.label_of.nbytes
        return int(self.line_of.nbytes + labels)
