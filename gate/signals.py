"""Every signal type the gate knows, and every fact about each, in one place.

As python-threatexchange's ``SignalType`` classes do, each type owns its facts: its name (the word in
bank files, the policy and match records), whether it is exact (matched by equality) or perceptual
(matched by Hamming distance over its ``bits``), the shape of a valid hash, which of an upload's
hashes are of this type, which sources can hold it and which optional package computes it. The bank
file reader, the policy parser, the compiled plan and the matchers all ask here.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import libipld

from gate.hashing.digests import cid_from_sha256

if TYPE_CHECKING:
    from gate.types import Hashes


class SignalType(StrEnum):
    """The name of a hash kind a bank entry or a match can carry; ``facts`` says everything else."""

    PDQ = "pdq"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    CID = "cid"
    PHASH = "phash"
    DHASH = "dhash"
    VIDEO_MD5 = "video_md5"  # HMA's exact type for video: the MD5 of the whole file

    @property
    def facts(self) -> Signal:
        return SIGNALS[self]

    @property
    def exact(self) -> bool:
        """Exact types match by equality; the others by Hamming distance."""
        return not SIGNALS[self].perceptual


class MatchSource(StrEnum):
    """Where a match comes from (``Match.source``, a rule's ``source``)."""

    LOCAL = "local"  # the operator's bank files, and the reviewed allowlist
    HMA = "hma"  # Hasher-Matcher-Actioner over HTTP


_HEX = re.compile(r"[0-9a-f]+")
_LOCAL = frozenset({MatchSource.LOCAL})


@dataclass(frozen=True, slots=True)
class Signal:
    """The facts of one signal type. A hash is a lowercase string; ``values`` gives an upload's."""

    type: SignalType
    bits: int  # a perceptual hash's Hamming space; a digest's length
    what: str  # for messages: "a PDQ hash"
    field: str  # the ``Hashes`` attribute holding the upload's value
    sources: frozenset[MatchSource] = _LOCAL
    perceptual: bool = False
    package: str | None = None  # the optional package that computes it (pip extra of the same name)

    def problem(self, value: str) -> str | None:
        """Why ``value`` (stripped, lowercase) is not a hash of this type; None when it is one."""
        digits = self.bits // 4
        if len(value) == digits and _HEX.fullmatch(value):
            return None
        return f"expected {digits} hex digits for {self.what}"

    def values(self, hashes: Hashes) -> tuple[str, ...]:
        """The upload's hashes of this type, lowercase, each once: a match on any is a match."""
        value: str | None = getattr(hashes, self.field)
        return (value.lower(),) if value else ()

    def available(self) -> bool:
        """Whether this process can compute it (phash/dhash need the optional imagehash package)."""
        if self.package is None:
            return True
        try:
            importlib.import_module(self.package)
        except ImportError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class _Pdq(Signal):
    def values(self, hashes: Hashes) -> tuple[str, ...]:
        # Every frame, orientation and dihedral variant (never one skipped: that would be a way around
        # a bank); identical hashes once.
        return tuple(dict.fromkeys(p.hex.lower() for p in hashes.pdq))


@dataclass(frozen=True, slots=True)
class _Cid(Signal):
    def problem(self, value: str) -> str | None:
        """A CIDv1 raw sha2-256 in multibase base32 (``bafkrei…``): what the PDS stores a blob under."""
        try:
            digest = bytes(libipld.decode_cid(value)["hash"]["digest"])
        except ValueError:
            digest = b""
        # Written exactly as the gate writes an upload's CID, so the text of a bank row can match it.
        if len(digest) == self.bits // 8 and cid_from_sha256(digest) == value:
            return None
        return "expected a CIDv1 raw sha2-256 base32 CID (bafkrei…)"


@dataclass(frozen=True, slots=True)
class _VideoMd5(Signal):
    def values(self, hashes: Hashes) -> tuple[str, ...]:
        # A JPEG that also sniffs as MP4 is both: an HMA video bank may hold its MD5.
        types = hashes.media_types or (hashes.media_type,)
        return (hashes.md5.lower(),) if any(t.startswith("video/") for t in types) else ()


_BOTH = frozenset({MatchSource.LOCAL, MatchSource.HMA})
# In the order they are listed to people and looked up.
SIGNALS: dict[SignalType, Signal] = {
    s.type: s
    for s in (
        _Pdq(SignalType.PDQ, 256, "a PDQ hash", "pdq", _BOTH, perceptual=True),
        Signal(SignalType.MD5, 128, "an MD5", "md5"),
        Signal(SignalType.SHA1, 160, "a SHA-1", "sha1"),
        Signal(SignalType.SHA256, 256, "a SHA-256", "sha256"),
        _Cid(SignalType.CID, 256, "a CID", "cid"),
        Signal(SignalType.PHASH, 64, "a 64-bit phash", "phash", perceptual=True, package="imagehash"),
        Signal(SignalType.DHASH, 64, "a 64-bit dhash", "dhash", perceptual=True, package="imagehash"),
        _VideoMd5(SignalType.VIDEO_MD5, 128, "a video MD5", "md5", frozenset({MatchSource.HMA})),
    )
}


def supported_by(*sources: str) -> tuple[SignalType, ...]:
    """The signal types any of ``sources`` can hold, in ``SIGNALS`` order."""
    return tuple(t for t, s in SIGNALS.items() if s.sources.intersection(sources))
