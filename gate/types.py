"""Value types shared by every stage of the pipeline: frozen dataclasses and enums only.

The pipeline is ``read_body → hash → match → evaluate → act → record``; these are the values that
flow between the stages. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gate.signals import SignalType


class Verdict(StrEnum):
    """What the gate does with an upload. Ordered by severity: see ``SEVERITY``."""

    FORWARD = "forward"
    QUARANTINE = "quarantine"
    REJECT = "reject"


class DecisionSource(StrEnum):
    """Which path judged the bytes a decision is about (the decisions table's ``source``)."""

    UPLOAD = "upload"  # an uploadBlob through the gate
    BACKFILL = "backfill"  # a blob the PDS already stores
    RETRO = "retro"  # an earlier decision judged again after a bank changed
    FIREHOSE = "firehose"  # a blob seen on the repository firehose
    API = "api"  # bytes or hashes sent to the gate's hash/match API


class ScanAction(StrEnum):
    """What a scan or retro-hunt may do beyond recording a blob the policy blocks (``[scan]``)."""

    REVIEW = "review"  # seal the bytes as evidence in the review queue, as a held upload's
    WITHHOLD = "withhold"  # getBlob through the gate answers "not found" for it
    TAKEDOWN = "takedown"  # the blob taken down on the PDS (repoBlobRef), under the daily cap


@dataclass(frozen=True, slots=True)
class ActionTaken:
    """One ``ScanAction`` carried out (or not) for a decision, as its row's ``actions`` says."""

    action: ScanAction
    result: str  # bounded: "done" | "already" (takedown) | "shadow" | "capped" | "refused" | "failed"
    detail: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"action": self.action.value, "result": self.result, "detail": self.detail}


# Precedence when several rules fire: reject > quarantine > forward.
SEVERITY: dict[Verdict, int] = {Verdict.FORWARD: 0, Verdict.QUARANTINE: 1, Verdict.REJECT: 2}


class Unhashable(StrEnum):
    """Why an image got no perceptual hash. Explicit, never an empty string."""

    LOW_QUALITY = "low_quality"  # PDQ quality below the cut-off (flat or featureless image)
    CORRUPT = "corrupt"  # the decoder refused the bytes
    TRUNCATED = "truncated"  # the image ends early
    BOMB = "bomb"  # more pixels than the decompression-bomb limit
    TOO_MANY_FRAMES = "too_many_frames"  # past [hashing] max_frames or max_total_pixels


class Variant(StrEnum):
    """Why the gate computed one of an upload's several perceptual hashes (a match on any counts)."""

    STORED = "stored"  # the pixels as stored in the file: what HMA and threatexchange hash
    DISPLAYED = "displayed"  # the picture as viewers show it, after its EXIF orientation
    DIHEDRAL = "dihedral"  # a rotation or mirror image that [hashing] dihedral asks for
    # The first frame as HMA's own hasher reads it, where that is not the picture (palette indices,
    # CMYK's C,M,Y planes): files banked through HMA's POST /c/bank/X/content match (gate/hashing/hma_view.py).
    AS_HMA = "as_hma"


@dataclass(frozen=True, slots=True)
class PdqHash:
    """One PDQ hash: 64 lowercase hex chars, its quality (0–100), the dihedral transform of the stored
    pixels it is the hash of, the frame it came from and why it was computed."""

    hex: str
    quality: int
    transform: str = "original"
    frame: int = 0  # animation frame, page or icon size; 0 = the picture the file opens on
    variant: Variant = Variant.STORED

    def to_json(self) -> dict[str, object]:
        return {
            "hash": self.hex,
            "quality": self.quality,
            "transform": self.transform,
            "frame": self.frame,
            "variant": self.variant.value,
        }


@dataclass(frozen=True, slots=True)
class Hashes:
    """Everything the gate computed from one decoded body."""

    sha256: str
    md5: str
    sha1: str
    cid: str  # CIDv1 raw sha2-256 base32: the key the PDS stores the blob under
    size: int
    # The type the bytes are judged as: the image type a decoder read them as (the sniffed one first),
    # else the sniffed type; "application/octet-stream" when nothing recognises them.
    media_type: str
    pdq: tuple[PdqHash, ...] = ()
    phash: str | None = None  # only when a policy rule asks for it
    dhash: str | None = None
    # Set when the media is an image the gate could not perceptually hash.
    unhashable: Unhashable | None = None
    unhashable_detail: str | None = None
    width: int | None = None
    height: int | None = None
    # Every type the bytes satisfy: each image decoder that opened them, and what the magic bytes say
    # (a JPEG that also sniffs as MP4 is both). Empty only in hand-made values.
    media_types: tuple[str, ...] = ()
    frames: int | None = None  # pictures decoded (frames, pages, sizes) across every decoder's reading

    @property
    def is_image(self) -> bool:
        return self.media_type.startswith("image/")

    def to_json(self) -> dict[str, object]:
        """Every hash and fact, as ``upload-gate hash --json`` prints it and the API answers it."""
        return {
            "media_type": self.media_type,
            "media_types": list(self.media_types),
            "size": self.size,
            "sha256": self.sha256,
            "md5": self.md5,
            "sha1": self.sha1,
            "cid": self.cid,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "pdq": [p.to_json() for p in self.pdq],
            "phash": self.phash,
            "dhash": self.dhash,
            "unhashable": self.unhashable.value if self.unhashable else None,
            "unhashable_detail": self.unhashable_detail,
        }

    def pdq_origin(self, value: str) -> PdqHash | None:
        """The first of this upload's PDQ hashes equal to ``value`` (identical frames are listed once)."""
        value = value.lower()
        return next((p for p in self.pdq if p.hex.lower() == value), None)


@dataclass(frozen=True, slots=True)
class Match:
    """One bank hit. ``distance`` is None for exact types."""

    source: str  # "local" | "hma"
    bank: str
    signal_type: SignalType
    distance: int | None
    content_id: str | None = None
    label: str | None = None
    query_hash: str | None = None  # which of the upload's hashes matched (dihedral: several)
    frame: int | None = None  # perceptual matches: the frame of the hash that matched (PdqHash.frame)
    variant: Variant | None = None  # ...and why that hash was computed (PdqHash.variant)

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "bank": self.bank,
            "signal": self.signal_type.value,
            "distance": self.distance,
            "content_id": self.content_id,
            "label": self.label,
            "query_hash": self.query_hash,
            "frame": self.frame,
            "variant": self.variant.value if self.variant else None,
        }


@dataclass(frozen=True, slots=True)
class MatcherFailure:
    """A matcher that could not answer for this upload (HMA down, timeout, bad answer...)."""

    matcher: str
    # bounded: "refused" | "timeout" | "http_5xx" | "not_ready" | "malformed" | "http_4xx" | "breaker_open"
    # | "overloaded" (lookups the gate did not send: HMA could not answer them in time) | "error"
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class MatchResult:
    matches: tuple[Match, ...] = ()
    failures: tuple[MatcherFailure, ...] = ()


@dataclass(frozen=True, slots=True)
class ShadowOutcome:
    """What shadow rules would have done, recorded but not applied."""

    verdict: Verdict
    rule: str
    matches: tuple[Match, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """The intent ``evaluate`` returns; ``act`` carries it out."""

    verdict: Verdict
    rule: str  # the rule (or built-in choice such as "on_unhashable") that decided
    reason: str  # bounded label for metrics: "match" | "no_match" | "allowlist" | "unhashable" | ...
    matches: tuple[Match, ...]  # the matches that drove the verdict
    policy_version: str
    all_matches: tuple[Match, ...] = ()  # every match seen, including ones beyond every rule's distance
    shadow: ShadowOutcome | None = None
    full_scan: bool = True  # False when forwarded without a full scan (matcher failure, unscannable...)
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        """The decision as the API answers it (the decision log's row has the same facts, flattened)."""
        shadow = self.shadow
        return {
            "verdict": self.verdict.value,
            "rule": self.rule,
            "reason": self.reason,
            "matches": [m.to_json() for m in self.matches],
            "all_matches": [m.to_json() for m in self.all_matches],
            "shadow": None
            if shadow is None
            else {
                "verdict": shadow.verdict.value,
                "rule": shadow.rule,
                "matches": [m.to_json() for m in shadow.matches],
            },
            "shadow_only": self.shadow_only,
            "full_scan": self.full_scan,
            "notes": list(self.notes),
            "policy_version": self.policy_version,
        }

    @property
    def shadow_only(self) -> bool:
        """True when a shadow rule would have acted more severely than the verdict that was applied."""
        return self.shadow is not None and SEVERITY[self.shadow.verdict] > SEVERITY[self.verdict]


@dataclass(frozen=True, slots=True)
class Uploader:
    """Who sent an upload. A token's DID is a claim, never an identity, until the PDS accepts the
    credential: ``did`` (and ``claimed_did``, the token's own words) are set only then, with
    ``verified_how`` saying how; for anyone else the record names no DID at all."""

    did: str | None
    method: str  # "access_jwt" | "service_auth" | "oauth" | "unknown" | "none"
    verified_how: str | None = None  # "pds": the PDS accepted the credential
    claimed_did: str | None = None

    @property
    def verified(self) -> bool:
        return self.did is not None and self.verified_how is not None
