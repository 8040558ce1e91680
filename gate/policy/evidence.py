"""The policy's ``[evidence]`` table: what is kept of blocked uploads, and for how long.

See ``config/policy.toml`` for each key and ``gate.store.retention`` for what the numbers do.
"""

from __future__ import annotations

from collections.abc import Callable

from gate.policy.model import Evidence

EVIDENCE_KEYS = frozenset(
    {"keep_rejected", "hold_days", "reported_days", "on_store_failure", "max_held_per_did_per_hour"}
)
MIN_REPORTED_DAYS = 366  # one year after the report, leap day included: 18 U.S.C. §2258A(h)
STORE_FAILURE_CHOICES = ("unavailable", "block")


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse_evidence(table: object, err: Callable[[str, str], None]) -> Evidence:
    """``err(key_path, message)`` records a problem; the documented default stands in for a bad value."""
    default = Evidence()
    if not isinstance(table, dict):
        err("evidence", "expected a table")
        return default
    for key in table:
        if key not in EVIDENCE_KEYS:
            err(f"evidence.{key}", "unknown key")
    keep = table.get("keep_rejected", default.keep_rejected)
    if not isinstance(keep, bool):
        err("evidence.keep_rejected", f"{keep!r} is not true or false")
        keep = default.keep_rejected
    hold = table.get("hold_days", default.hold_days)
    if not _int_in(hold, 1, 3650):
        err("evidence.hold_days", f"{hold!r} is not a number of days in 1–3650")
        hold = default.hold_days
    reported = table.get("reported_days", default.reported_days)
    if not _int_in(reported, MIN_REPORTED_DAYS, 36500):
        err(
            "evidence.reported_days",
            f"{reported!r} is not a number of days ≥ {MIN_REPORTED_DAYS} (the law asks for one year after the report)",
        )
        reported = default.reported_days
    failure = table.get("on_store_failure", default.on_store_failure)
    if failure not in STORE_FAILURE_CHOICES:
        err("evidence.on_store_failure", f'{failure!r} is not one of "unavailable", "block"')
        failure = default.on_store_failure
    cap = table.get("max_held_per_did_per_hour", default.max_held_per_did_per_hour)
    if not _int_in(cap, 1, 100_000):
        err("evidence.max_held_per_did_per_hour", f"{cap!r} is not a number of items in 1–100000")
        cap = default.max_held_per_did_per_hour
    return Evidence(
        keep_rejected=keep,
        hold_days=hold,
        reported_days=reported,
        on_store_failure=failure,
        max_held_per_did_per_hour=cap,
    )
