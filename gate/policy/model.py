"""The policy: the operator's judgement, parsed from ``config/policy.toml`` into frozen values.

See ``config/policy.toml`` for every key with its meaning. ``gate.policy.load`` builds these;
``gate.policy.evaluate`` reads them. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from gate.hashing.options import MAX_FRAMES, MAX_TOTAL_PIXELS
from gate.signals import SignalType
from gate.types import ScanAction, Verdict


@dataclass(frozen=True, slots=True)
class Rule:
    """Select matches by source, bank and signal type within ``max_distance``; then act."""

    name: str
    action: Verdict
    sources: frozenset[str]  # {"local"}, {"hma"} or both
    banks: frozenset[str] | None  # None = any bank of those sources
    signal_types: frozenset[SignalType] | None  # None = any signal type
    max_distance: int  # 0–256 bits; ignored for exact types
    shadow: bool = False  # record what the rule would do, do not do it

    def selects(self, source: str, bank: str, signal: SignalType, distance: int | None) -> bool:
        if source not in self.sources:
            return False
        if self.banks is not None and bank not in self.banks:
            return False
        if self.signal_types is not None and signal not in self.signal_types:
            return False
        return distance is None or distance <= self.max_distance


@dataclass(frozen=True, slots=True)
class Response:
    """What a client is told when its upload is rejected or quarantined (an XRPC error)."""

    status: int
    error: str
    message: str


@dataclass(frozen=True, slots=True)
class Hashing:
    dihedral: bool = False  # also hash the 7 rotations/flips: catches rotated or mirrored copies
    min_pdq_quality: int = 50  # below it an image is "unhashable: low_quality" (HMA's own cut-off)
    max_frames: int = MAX_FRAMES  # frames hashed per upload; more: "unhashable: too_many_frames"
    max_total_pixels: int = MAX_TOTAL_PIXELS  # pixels of the frames after the first, together; ditto


@dataclass(frozen=True, slots=True)
class Evidence:
    """``[evidence]``: what is kept of blocked uploads, and for how long (see gate.store.retention)."""

    keep_rejected: bool = False  # also keep encrypted evidence of rejected uploads (quarantine always does)
    hold_days: int = 30  # unreviewed (held) evidence is deleted this long after the upload
    reported_days: int = 366  # kept this long after a report; never below 366 (18 U.S.C. §2258A(h))
    on_store_failure: str = "unavailable"  # "unavailable" (503, client retries) | "block" (answer as usual)
    # Evidence items kept per verified uploader per hour; past it the verdict stands and nothing is kept
    # (one real account must not be able to fill the store).
    max_held_per_did_per_hour: int = 20


@dataclass(frozen=True, slots=True)
class RuleLabels:
    """``[[firehose.labels]]``: the label values a rule's matches publish (gate/labels)."""

    rule: str
    values: tuple[str, ...]
    account: bool = False  # also label the author's account (the DID), not only the record
    report: bool = False  # also createReport the record to GATE_REPORT_SERVICE_URL (gate/firehose/report)


@dataclass(frozen=True, slots=True)
class Firehose:
    """``[firehose]``: what ``upload-gate watch`` does when it falls behind, and which matches it labels."""

    max_lag_seconds: int = 600  # a commit older than this when read is past the lag limit
    on_lag: str = "pause"  # "pause": read no further until caught up (nothing skipped) | "skip": count, skip
    labels: tuple[RuleLabels, ...] = ()
    takedown: bool = False  # a blob a rule rejects, on the gate's own PDS, is taken down there

    def labels_for(self, rule: str) -> RuleLabels | None:
        return next((r for r in self.labels if r.rule == rule), None)


@dataclass(frozen=True, slots=True)
class Scan:
    """``[scan]``: what a scan of stored blobs and a retro-hunt do with a blob a rule blocks (each
    decision is recorded whatever this says; built-in choices such as on_unhashable never act here)."""

    reject: frozenset[ScanAction]
    quarantine: frozenset[ScanAction]
    shadow: bool = False  # record what would have been done, do none of it

    def actions(self, verdict: Verdict) -> frozenset[ScanAction]:
        if verdict is Verdict.REJECT:
            return self.reject
        return self.quarantine if verdict is Verdict.QUARANTINE else frozenset()


@dataclass(frozen=True, slots=True)
class Policy:
    version: str  # sha256 of the file's bytes, first 16 hex: recorded with every decision
    rules: tuple[Rule, ...]
    on_unhashable: Verdict  # image that could not be hashed (corrupt, truncated, bomb, low quality)
    on_unscannable: Verdict  # media the gate cannot perceptually hash (video, unknown bytes)
    on_matcher_error: Verdict  # a matcher failed for this upload
    on_log_failure: Verdict  # decision log and its spool both failing (forward or reject only)
    on_low_quality: Verdict | None  # optional override of on_unhashable for low-quality images
    unscannable_by_type: tuple[tuple[str, Verdict], ...]  # ("video/*", verdict) overrides, first match wins
    allowlist_banks: frozenset[str]  # local banks of known-good hashes: an exact match forwards
    reject_response: Response
    quarantine_response: Response
    hashing: Hashing
    hma_banks: frozenset[str] | None = None  # banks= sent to HMA; None = all
    evidence: Evidence = Evidence()
    firehose: Firehose = Firehose()
    scan: Scan | None = None  # None: the policy says nothing; scans refuse to run, retro-hunts only record

    def response_for(self, verdict: Verdict) -> Response:
        return self.reject_response if verdict is Verdict.REJECT else self.quarantine_response

    def can_act(self, verdict: Verdict) -> bool:
        """Whether some enforced rule or built-in choice of this policy can reach ``verdict``."""
        choices = [self.on_unhashable, self.on_unscannable, self.on_matcher_error, self.on_low_quality]
        choices += [v for _, v in self.unscannable_by_type]
        choices += [r.action for r in self.rules if not r.shadow]
        return verdict in choices

    @property
    def keeps_evidence(self) -> bool:
        """True when this policy can store encrypted evidence (so the gate needs an evidence key)."""
        scan = self.scan
        scan_reviews = (
            scan is not None
            and not scan.shadow
            and any(ScanAction.REVIEW in scan.actions(v) and self.can_act(v) for v in Verdict)
        )
        return (
            self.can_act(Verdict.QUARANTINE)
            or (self.evidence.keep_rejected and self.can_act(Verdict.REJECT))
            or scan_reviews
        )
