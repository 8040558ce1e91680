"""What the HMA matcher asks for one upload under one policy: which banks, signal types and hashes.

Pure functions of the policy and the hashes: no I/O.
"""

from __future__ import annotations

from gate.policy.model import Policy
from gate.types import Hashes, SignalType

SOURCE = "hma"
HMA_SIGNALS = frozenset({SignalType.PDQ, SignalType.VIDEO_MD5})


def hma_banks_for(policy: Policy) -> tuple[str, ...] | None:
    """The ``banks=`` to send: ``policy.hma_banks``, else the banks HMA rules name.

    None means every bank (some HMA rule names no bank); ``()`` means no rule relies on HMA at all.
    """
    if policy.hma_banks is not None:
        return tuple(sorted(policy.hma_banks))
    names: set[str] = set()
    for rule in policy.rules:
        if SOURCE not in rule.sources:
            continue
        if rule.banks is None:
            return None
        names |= rule.banks
    return tuple(sorted(names))


def hma_signals_for(policy: Policy) -> frozenset[SignalType]:
    """The HMA signal types some rule (active or shadow) could act on."""
    wanted: set[SignalType] = set()
    for rule in policy.rules:
        if SOURCE in rule.sources:
            wanted |= HMA_SIGNALS if rule.signal_types is None else rule.signal_types & HMA_SIGNALS
    if not wanted and policy.hma_banks is not None:
        wanted = set(HMA_SIGNALS)
    return frozenset(wanted)


def queries_for(hashes: Hashes, signals: frozenset[SignalType]) -> list[tuple[SignalType, str]]:
    """One (signal, lowercase hash) per lookup: every frame, orientation and dihedral variant of the
    upload (never one skipped: that would be a way around HMA), identical hashes asked once."""
    out: list[tuple[SignalType, str]] = []
    if SignalType.PDQ in signals:
        for pdq in hashes.pdq:
            query = (SignalType.PDQ, pdq.hex.lower())
            if query not in out:
                out.append(query)
    if SignalType.VIDEO_MD5 in signals and any(t.startswith("video/") for t in _types(hashes)):
        out.append((SignalType.VIDEO_MD5, hashes.md5.lower()))
    return out


def _types(hashes: Hashes) -> tuple[str, ...]:
    # A JPEG that also sniffs as MP4 is both: an HMA video bank may hold its MD5.
    return hashes.media_types or (hashes.media_type,)
