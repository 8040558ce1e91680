"""The policy's ``[scan]`` table: what a scan of stored blobs and a retro-hunt do with a blocked blob.

See ``config/policy.toml`` for each key. Both verdict keys are required: a scan that takes blobs down or
withholds them is an operator's explicit choice, never a default.
"""

from __future__ import annotations

from collections.abc import Callable

from gate.policy.model import Scan
from gate.types import ScanAction

SCAN_KEYS = frozenset({"reject", "quarantine", "shadow"})
_CHOICES = ", ".join(f'"{a.value}"' for a in ScanAction)


def parse_scan(table: object, err: Callable[[str, str], None]) -> Scan | None:
    """``err(key_path, message)`` records a problem; None when the table is unusable."""
    if not isinstance(table, dict):
        err("scan", "expected a table")
        return None
    for key in table:
        if key not in SCAN_KEYS:
            err(f"scan.{key}", "unknown key")
    reject = _actions(table, "reject", err)
    quarantine = _actions(table, "quarantine", err)
    shadow = table.get("shadow", False)
    if not isinstance(shadow, bool):
        err("scan.shadow", f"{shadow!r} is not true or false")
        return None
    if reject is None or quarantine is None:
        return None
    return Scan(reject=reject, quarantine=quarantine, shadow=shadow)


def _actions(
    table: dict[str, object], key: str, err: Callable[[str, str], None]
) -> frozenset[ScanAction] | None:
    path = f"scan.{key}"
    if key not in table:
        err(path, f"required: a list of {_CHOICES} ([] records only)")
        return None
    raw = table[key]
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        err(path, f"expected a list of {_CHOICES} ([] records only)")
        return None
    out: set[ScanAction] = set()
    for value in raw:
        try:
            out.add(ScanAction(value))
        except ValueError:
            err(path, f"{value!r} is not one of {_CHOICES}")
            return None
    return frozenset(out)
