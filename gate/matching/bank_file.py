"""One local bank file: ``signal_type,hash[,label]`` rows, validated and normalised at the edge.

Bank files are written by people and by scripts, so every row is checked for its signal type's exact
shape; a row that fails is reported with its file and line and skipped. Only a file that cannot be read
at all (missing permissions, not UTF-8) is an error for the whole file.
"""

from __future__ import annotations

import base64
import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from gate.errors import ConfigError
from gate.types import SignalType

_HEX = {n: re.compile(rf"^[0-9a-f]{{{n}}}$") for n in (16, 32, 40, 64)}
CID_PREFIX = bytes([0x01, 0x55, 0x12, 0x20])  # CIDv1, raw codec, sha2-256, 32-byte digest
MAX_LABEL = 500


class BankFileError(ConfigError):
    """A whole bank file could not be read."""


def _hex(length: int, what: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if _HEX[length].match(value) else f"expected {length} hex digits for {what}"

    return check


def check_cid(value: str) -> str | None:
    """A CIDv1 raw sha2-256 in multibase base32 (``bafkrei…``): what the PDS stores a blob under."""
    problem = "expected a CIDv1 raw sha2-256 base32 CID (bafkrei…)"
    if not value.startswith("b") or len(value) != 59:
        return problem
    body = value[1:].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError:
        return problem
    return None if raw[:4] == CID_PREFIX and len(raw) == 36 else problem


VALIDATORS: dict[SignalType, Callable[[str], str | None]] = {
    SignalType.PDQ: _hex(64, "a PDQ hash"),
    SignalType.MD5: _hex(32, "an MD5"),
    SignalType.SHA1: _hex(40, "a SHA-1"),
    SignalType.SHA256: _hex(64, "a SHA-256"),
    SignalType.CID: check_cid,
    SignalType.PHASH: _hex(16, "a 64-bit phash"),
    SignalType.DHASH: _hex(16, "a 64-bit dhash"),
}
LOCAL_SIGNALS = ", ".join(VALIDATORS)
_BY_NAME = {s.value: s for s in VALIDATORS}


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
        return f"unknown signal type {fields[0].strip()!r} (expected one of {LOCAL_SIGNALS})"
    value = fields[1].strip().lower()
    problem = VALIDATORS[signal](value)
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
