"""How long evidence is kept: the deadline each state sets (its changes: ``gate.store.transitions``).

Deadlines (``evidence.expires_at``), fixed when an item enters a state:

- ``held``: decision time + the policy's ``[evidence] hold_days``. Unreviewed evidence is not kept
  forever: it is the most sensitive data the gate holds.
- ``released``: none — a false positive's bytes are deleted in the same transaction.
- ``confirmed``: none until reported. A confirmed match must be reported "as soon as reasonably possible"
  (18 U.S.C. §2258A(a)); the preservation clock starts at the report, so nothing may expire before it.
- ``reported``: report time + ``reported_days`` (never less than 366 days, whatever the policy says:
  §2258A(h) as amended by the 2024 REPORT Act requires one year after the report; 366 days is one
  year even across a leap day).
- ``legal_hold``: while set, nothing is purged or released, whatever the deadline. Placed by an admin
  with the matter it is held for, lifted by an admin; both audited. Lifting leaves the deadline as it
  was: an item whose deadline passed under the hold is purged by the next purge.

Purging (``gate.store.purge``) deletes only the sealed bytes (and the wrapped data key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gate.policy.model import Evidence

MIN_REPORTED_DAYS = 366
DEFAULT_HOLD_DAYS = 30


@dataclass(frozen=True, slots=True)
class Retention:
    hold_days: int = DEFAULT_HOLD_DAYS
    reported_days: int = MIN_REPORTED_DAYS

    @classmethod
    def of(cls, evidence: Evidence) -> Retention:
        """The deadlines the policy's ``[evidence]`` table sets."""
        return cls(evidence.hold_days, evidence.reported_days)

    def held_until(self, created_at: datetime) -> datetime:
        return created_at + timedelta(days=self.hold_days)

    def reported_until(self, reported_at: datetime) -> datetime:
        return reported_at + timedelta(days=max(self.reported_days, MIN_REPORTED_DAYS))
