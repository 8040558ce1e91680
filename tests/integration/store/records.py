"""Decision records as the pipeline builds them, for the four outcomes the log must keep apart."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gate.record import DecisionRecord, new_decision_id
from gate.signals import SignalType
from gate.types import (
    Decision,
    DecisionSource,
    Hashes,
    Match,
    PdqHash,
    ShadowOutcome,
    Unhashable,
    Uploader,
    Variant,
    Verdict,
)

BASE_TIME = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)


def hashes(n: int, *, media_type: str = "image/png", pdq: bool = True) -> Hashes:
    return Hashes(
        sha256=f"{n:064x}",
        md5=f"{n:032x}",
        sha1=f"{n:040x}",
        cid=f"bafkreitest{n:08d}",
        size=1000 + n,
        media_type=media_type,
        pdq=(PdqHash(f"{n:064x}"[::-1], 87, "original"), PdqHash(f"{n + 1:064x}", 87, "rot90"))
        if pdq
        else (),
        width=64,
        height=48,
        media_types=(media_type,),
        frames=1,
    )


def forward(n: int = 1, *, at: datetime | None = None) -> DecisionRecord:
    return DecisionRecord(
        id=new_decision_id(),
        time=at or BASE_TIME + timedelta(seconds=n),
        source=DecisionSource.UPLOAD,
        client_ip="203.0.113.7",
        uploader=Uploader(f"did:plc:user{n}", "access_jwt", "pds", f"did:plc:user{n}"),
        declared_type="image/png",
        hashes=hashes(n),
        decision=Decision(Verdict.FORWARD, "default", "no_match", (), "p-2026-11-24"),
        verdict=Verdict.FORWARD,
        timings_ms={"read": 1.25, "hash": 7.5, "match": 2.0, "upstream": 30.125},
        upstream_status=200,
    )


CSAM = Match("hma", "ncmec", SignalType.PDQ, 12, "c-881", "csam", "abc", frame=2, variant=Variant.DISPLAYED)
TERROR = Match("local", "tvec", SignalType.SHA256, None, "t-1", None, None)
FAR = Match("hma", "stopncii", SignalType.PDQ, 70, "s-9", None, "abc")


def reject(n: int = 2) -> DecisionRecord:
    decision = Decision(Verdict.REJECT, "csam-pdq", "match", (CSAM,), "p-2026-11-24", all_matches=(CSAM, FAR))
    return DecisionRecord(
        id=new_decision_id(),
        time=BASE_TIME + timedelta(seconds=n),
        source=DecisionSource.UPLOAD,
        client_ip="2001:db8::5",
        uploader=Uploader("did:plc:bad", "service_auth", "pds", "did:plc:bad"),
        declared_type="image/jpeg",
        # A JPEG that also sniffs as MP4, whose third frame (an MPO's) matched as displayed.
        hashes=replace(
            hashes(n, media_type="image/jpeg"),
            pdq=(
                PdqHash(f"{n:064x}"[::-1], 87),
                PdqHash(f"{n + 1:064x}", 87, "rotate270", 2, Variant.DISPLAYED),
            ),
            media_types=("image/jpeg", "video/mp4"),
            frames=3,
        ),
        decision=decision,
        verdict=Verdict.REJECT,
        timings_ms={"read": 0.5, "hash": 6.0, "match": 15.0},
    )


def quarantine(n: int = 3) -> DecisionRecord:
    decision = Decision(
        Verdict.QUARANTINE,
        "on_matcher_error",
        "matcher_error",
        (),
        "p-2026-11-24",
        full_scan=False,
        notes=("hma: timeout",),
    )
    h = Hashes(
        sha256=f"{n:064x}",
        md5=f"{n:032x}",
        sha1=f"{n:040x}",
        cid=f"bafkreitest{n:08d}",
        size=5,
        media_type="image/png",
        unhashable=Unhashable.LOW_QUALITY,
        unhashable_detail="quality 12 < 50",
    )
    return DecisionRecord(
        id=new_decision_id(),
        time=BASE_TIME + timedelta(seconds=n),
        source=DecisionSource.UPLOAD,
        client_ip=None,
        uploader=Uploader(None, "none"),  # the PDS was never asked (unreachable): no DID is named
        declared_type=None,
        hashes=h,
        decision=decision,
        verdict=Verdict.QUARANTINE,
        timings_ms={"read": 0.1},
        error="hma timeout after 2.0s",
        cached=False,
    )


def shadow(n: int = 4) -> DecisionRecord:
    outcome = ShadowOutcome(Verdict.REJECT, "trial-terror", (TERROR,))
    decision = Decision(
        Verdict.FORWARD,
        "default",
        "no_match",
        (),
        "p-2026-11-24",
        all_matches=(TERROR,),
        shadow=outcome,
    )
    return DecisionRecord(
        id=new_decision_id(),
        time=BASE_TIME + timedelta(seconds=n),
        source=DecisionSource.UPLOAD,
        client_ip="198.51.100.9",
        uploader=Uploader("did:web:example.com", "oauth", "pds", "did:web:example.com"),
        declared_type="image/webp",
        hashes=hashes(n, media_type="image/webp", pdq=False),
        decision=decision,
        verdict=Verdict.FORWARD,
        timings_ms={"read": 0.2, "hash": 3.0, "match": 1.0, "upstream": 12.0},
        upstream_status=200,
        cached=True,
    )


def unscanned(n: int = 5) -> DecisionRecord:
    """Forwarded without a full scan (HMA down, the policy said forward)."""
    decision = Decision(
        Verdict.FORWARD, "on_matcher_error", "matcher_error", (), "p-2026-11-24", full_scan=False
    )
    return dataclasses.replace(forward(n), decision=decision)
