"""What the HMA matcher asks for one upload under one policy: which banks, signal types and hashes.

Pure functions of the policy and the hashes: no I/O.
"""

from __future__ import annotations

from gate.policy.model import Policy
from gate.signals import MatchSource, SignalType, supported_by
from gate.types import Hashes

SOURCE = MatchSource.HMA
HMA_SIGNALS = frozenset(supported_by(SOURCE))


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
    return [(s, v) for s in supported_by(SOURCE) if s in signals for v in s.facts.values(hashes)]
