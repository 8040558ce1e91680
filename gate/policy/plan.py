"""The policy compiled once: what every upload judged under it needs, worked out when it loads.

The policy is the operator's words; the plan is what the gate does with them for each upload — which
hashes to compute, what each matcher looks up and in which banks, how far a perceptual match may be.
``PolicyHolder`` compiles it whenever a policy (or, through the re-check a bank change triggers, a bank)
loads, so no upload re-reads the rules. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gate.hashing.options import MAX_IMAGE_PIXELS, HashOptions
from gate.policy.model import Policy
from gate.signals import MatchSource, SignalType, supported_by


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one source is asked for each upload."""

    signals: tuple[SignalType, ...]  # looked up, in ``gate.signals.SIGNALS`` order
    banks: tuple[str, ...] | None = None  # None: every bank; (): no rule relies on this source
    # Perceptual types: the widest distance any rule (shadow too) could select a match at.
    max_distance: Mapping[SignalType, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    policy: Policy
    hashing: HashOptions  # what the hasher computes
    local: Lookup  # the operator's bank files
    hma: Lookup

    @property
    def version(self) -> str:
        return self.policy.version


def compile_plan(policy: Policy, *, max_image_pixels: int = MAX_IMAGE_PIXELS) -> Plan:
    """``max_image_pixels`` is the process's decompression-bomb limit (GATE_MAX_IMAGE_PIXELS)."""
    return Plan(
        policy=policy,
        hashing=_hashing(policy, max_image_pixels),
        local=_local(policy),
        hma=Lookup(_hma_signals(policy), hma_banks(policy)),
    )


def _hashing(policy: Policy, max_image_pixels: int) -> HashOptions:
    # PDQ always; pHash and dHash (an optional package, and slower) only when some rule names them.
    named = {s for r in policy.rules for s in r.signal_types or ()}
    return HashOptions(
        dihedral=policy.hashing.dihedral,
        min_pdq_quality=policy.hashing.min_pdq_quality,
        phash=SignalType.PHASH in named,
        dhash=SignalType.DHASH in named,
        max_image_pixels=max_image_pixels,
        max_frames=policy.hashing.max_frames,
        max_total_pixels=policy.hashing.max_total_pixels,
    )


def _local(policy: Policy) -> Lookup:
    """Every exact type always (an allowlist hit, and every match recorded); a perceptual type only at
    the widest distance a rule could act on it, since a wide search of a large bank is not free."""
    widest: dict[SignalType, int] = {}
    for rule in policy.rules:
        if MatchSource.LOCAL not in rule.sources:
            continue
        for signal in supported_by(MatchSource.LOCAL):
            if not signal.exact and (rule.signal_types is None or signal in rule.signal_types):
                widest[signal] = max(widest.get(signal, 0), rule.max_distance)
    signals = tuple(s for s in supported_by(MatchSource.LOCAL) if s.exact or s in widest)
    return Lookup(signals, None, widest)


def hma_banks(policy: Policy) -> tuple[str, ...] | None:
    """The ``banks=`` to send HMA: ``policy.hma_banks``, else the banks HMA rules name.

    None means every bank (some HMA rule names no bank); ``()`` means no rule relies on HMA at all.
    """
    if policy.hma_banks is not None:
        return tuple(sorted(policy.hma_banks))
    names: set[str] = set()
    for rule in policy.rules:
        if MatchSource.HMA not in rule.sources:
            continue
        if rule.banks is None:
            return None
        names |= rule.banks
    return tuple(sorted(names))


def _hma_signals(policy: Policy) -> tuple[SignalType, ...]:
    """The HMA signal types some rule (active or shadow) could act on; all of them when only
    ``hma_banks`` asks for HMA."""
    held = supported_by(MatchSource.HMA)
    wanted: set[SignalType] = set()
    for rule in policy.rules:
        if MatchSource.HMA in rule.sources:
            wanted |= set(held) if rule.signal_types is None else rule.signal_types & set(held)
    if not wanted and policy.hma_banks is not None:
        wanted = set(held)
    return tuple(s for s in held if s in wanted)
