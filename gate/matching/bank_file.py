"""One local bank file: ``signal_type,hash[,label]`` rows, validated and normalised at the edge.

Bank files are written by people and by scripts, so every row is checked for its signal type's exact
shape (``gate.signals``); a row that fails is reported with its file and line and skipped. Only a file
that cannot be read at all (missing permissions, not UTF-8) is an error for the whole file.

Rows go straight into compact per-type ``Column``s (``gate.matching.bank_columns``). NCMEC-scale lists
are tens of millions of plain ``type,hex`` rows, so those are recognised in bulk (numpy, a block of the
file at a time: a few seconds for 10M rows, where a row at a time took ~25 s and gigabytes of
objects); every other row — a label, spaces, a header, a comment, a CID, a mistake — is read one at a
time as before, with the same rules and messages.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from gate.errors import ConfigError
from gate.matching.bank_columns import Column, Labels, width_of
from gate.signals import MatchSource, SignalType, supported_by

MAX_LABEL = 500
LOCAL = supported_by(MatchSource.LOCAL)  # the signal types a bank file may hold
_BY_NAME = {s.value: s for s in LOCAL}
BLOCK = 2 << 20  # bytes of a file recognised at a time
# Hex digit values; 255 = not a hex digit. Upper case is accepted, as a row is lowercased anyway.
_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


class BankFileError(ConfigError):
    """A whole bank file could not be read."""


@dataclass(frozen=True, slots=True)
class BankFile:
    name: str  # the bank: file name without .csv
    filename: str
    columns: dict[SignalType, Column]
    labels: Labels
    counts: dict[SignalType, int]
    problems: tuple[str, ...]  # "blocklist.csv:7: …" for each skipped row
    digest: str  # SHA-256 of the file's bytes (hex): fingerprints the bank set, keys the bank cache


@dataclass(frozen=True, slots=True)
class Row:
    signal: SignalType
    value: bytes | str  # a binary digest, or a CID's text
    label: str | None


def parse_row(fields: list[str]) -> Row | str:
    """A row, or the reason it is invalid."""
    if len(fields) < 2 or len(fields) > 3:
        return f"expected signal_type,hash[,label]; got {len(fields)} field(s)"
    signal = _BY_NAME.get(fields[0].strip().lower())
    if signal is None:
        return f"unknown signal type {fields[0].strip()!r} (expected one of {', '.join(LOCAL)})"
    value = fields[1].strip().lower()
    problem = signal.facts.problem(value)
    if problem is not None:
        return f"{problem}, got {fields[1].strip()[:80]!r}"
    label = fields[2].strip() if len(fields) == 3 else ""
    if len(label) > MAX_LABEL:
        return f"label longer than {MAX_LABEL} characters"
    return Row(signal, value if not width_of(signal) else bytes.fromhex(value), label or None)


def read_bank_file(path: Path) -> BankFile:
    """Read ``path`` into compact columns, one per signal type."""
    try:
        with path.open("rb") as f:
            return _read(path.name, f)
    except OSError as exc:
        raise BankFileError(f"{path.name}: cannot read: {exc.strerror or exc}") from exc


def _read(filename: str, f: BinaryIO) -> BankFile:
    # Read, not mapped: a bank file truncated by its editor while mapped would kill the gate (SIGBUS);
    # read a block at a time, whatever happens to the file, the worst is a reload that reports rows.
    reader = _Reader(filename)
    digest = hashlib.sha256()
    head = f.read(3)
    digest.update(head)
    carry, offset = (b"", 3) if head == b"\xef\xbb\xbf" else (head, 0)  # a BOM is not part of a row
    line = 1
    while True:
        chunk = f.read(BLOCK)
        digest.update(chunk)
        data = carry + chunk
        end = _last_line_end(data) if chunk else len(data)
        block, carry = data[:end], data[end:]
        if block:
            try:
                block.decode("utf-8")  # whole lines: no character is split
            except UnicodeDecodeError as exc:
                raise BankFileError(f"{filename}: not UTF-8 (byte {offset + exc.start})") from exc
            line = reader.block(block, line)
            offset += len(block)
        if not chunk:
            break
    return BankFile(
        filename.removesuffix(".csv"),
        filename,
        reader.columns,
        reader.labels,
        reader.counts,
        tuple(reader.problems),
        digest.hexdigest(),
    )


def _last_line_end(data: bytes) -> int:
    """Where the last complete line of ``data`` ends (after its \\n, or a lone \\r); 0 if none.

    A \\r as the last byte may be the first half of a CRLF: it waits for the next block."""
    newline = data.rfind(b"\n")
    cr = data.rfind(b"\r", 0, len(data) - 1)
    return max(newline, cr) + 1


class _Reader:
    def __init__(self, filename: str):
        self.filename = filename
        self.columns = {s: Column(s, width_of(s)) for s in LOCAL}
        self.labels = Labels()
        self.counts: dict[SignalType, int] = {}
        self.problems: list[str] = []
        self.first = True  # no row read yet: the optional header may come

    def block(self, data: bytes, line: int) -> int:
        """Read whole lines ``data`` (the first is line ``line``); the next block's first line."""
        if not data.endswith((b"\n", b"\r")):
            data += b"\n"
        raw = np.frombuffer(data, dtype=np.uint8)
        # A line ends at \n, or at a \r not followed by one (old Mac exports): as an editor shows them.
        after = np.empty_like(raw)
        after[:-1], after[-1] = raw[1:], 0  # a block never ends between \r and \n
        ends = np.flatnonzero((raw == 10) | ((raw == 13) & (after != 10)))
        starts = np.empty_like(ends)
        starts[0], starts[1:] = 0, ends[:-1] + 1
        lengths = ends - starts
        crlf = (raw[ends] == 10) & (raw[np.maximum(ends - 1, 0)] == 13)
        lengths -= (lengths > 0) & crlf  # a CRLF line ends before its \r
        plain = np.zeros(len(ends), dtype=bool)
        if not self.first:  # bulk rows only once the header question is settled
            for signal in LOCAL:
                if width_of(signal):
                    plain |= self._bulk(raw, starts, lengths, line, signal)
        for i in np.flatnonzero(~plain).tolist():
            self._one(data[starts[i] : starts[i] + lengths[i]], line + i)
        return line + len(ends)

    def _bulk(
        self,
        raw: npt.NDArray[np.uint8],
        starts: npt.NDArray[np.intp],
        lengths: npt.NDArray[np.intp],
        line: int,
        signal: SignalType,
    ) -> npt.NDArray[np.bool_]:
        """Rows exactly ``<type>,<hex>``: added at once; which lines they were."""
        prefix = f"{signal.value},".encode()
        digits = signal.facts.bits // 4
        found: npt.NDArray[np.bool_] = np.asarray(lengths == len(prefix) + digits, dtype=np.bool_)
        for k, byte in enumerate(prefix):
            found[found] = raw[starts[found] + k] == byte
        rows = np.flatnonzero(found)
        if not rows.size:
            return found
        hex_digits = _HEX[raw[starts[rows, None] + len(prefix) + np.arange(digits)]]
        valid = (hex_digits != 255).all(axis=1)
        found[rows[~valid]] = False  # read one at a time: reported with the usual message
        rows, hex_digits = rows[valid], hex_digits[valid]
        digests = (hex_digits[:, 0::2] << 4) | hex_digits[:, 1::2]
        self.columns[signal].extend((rows + line).astype(np.uint32), digests)
        self.counts[signal] = self.counts.get(signal, 0) + len(rows)
        return found

    def _one(self, data: bytes, line: int) -> None:
        text = data.decode("utf-8").strip()
        if not text or text.startswith("#"):
            return
        # Plain rows split fast; a quoted label goes through the csv module.
        fields = next(csv.reader([text]), []) if '"' in text else text.split(",")
        if self.first and fields and fields[0].strip().lower() == "signal_type":
            self.first = False
            return  # the optional header
        self.first = False
        parsed = parse_row(fields)
        if isinstance(parsed, str):
            self.problems.append(f"{self.filename}:{line}: {parsed}")
            return
        self.columns[parsed.signal].add(line, parsed.value, self.labels.id(parsed.label))
        self.counts[parsed.signal] = self.counts.get(parsed.signal, 0) + 1
