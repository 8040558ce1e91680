"""One local bank file: ``signal_type,hash[,label]`` rows, validated and normalised at the edge.

Bank files are written by people and by scripts, so every row is checked for its signal type's exact
shape (``gate.signals``); a row that fails is reported with its file and line and skipped. Only a file
that cannot be read at all (missing permissions, not UTF-8) is an error for the whole file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from gate.errors import ConfigError
from gate.signals import MatchSource, SignalType, supported_by

MAX_LABEL = 500
LOCAL = supported_by(MatchSource.LOCAL)  # the signal types a bank file may hold
_BY_NAME = {s.value: s for s in LOCAL}


class BankFileError(ConfigError):
    """A whole bank file could not be read."""


class BankRow(NamedTuple):  # a tuple, not a frozen dataclass: banks hold millions of rows
    signal: SignalType
    hash: str  # lowercase, validated
    line: int
    label: str | None


@dataclass(frozen=True, slots=True)
class BankFile:
    name: str  # the bank: file name without .csv
    filename: str
    rows: tuple[BankRow, ...]
    problems: tuple[str, ...]  # "blocklist.csv:7: …" for each skipped row
    content: bytes  # kept only to fingerprint the bank set; dropped after loading


def parse_row(fields: list[str], line: int) -> BankRow | str:
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
    return BankRow(signal, value, line, label or None)


def read_bank_file(path: Path) -> BankFile:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise BankFileError(f"{path.name}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BankFileError(f"{path.name}: not UTF-8 (byte {exc.start})") from exc
    rows: list[BankRow] = []
    problems: list[str] = []
    first = True
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        # Plain rows split fast (1M-row banks); a quoted label goes through the csv module.
        fields = next(csv.reader([stripped]), []) if '"' in stripped else stripped.split(",")
        if first and fields and fields[0].strip().lower() == "signal_type":
            first = False
            continue  # the optional header
        first = False
        parsed = parse_row(fields, line_no)
        if isinstance(parsed, str):
            problems.append(f"{path.name}:{line_no}: {parsed}")
        else:
            rows.append(parsed)
    return BankFile(path.stem, path.name, tuple(rows), tuple(problems), content)
