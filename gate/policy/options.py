"""What the hasher must compute for the policy in force: ``hash_options(policy)``.

PDQ is always computed for images; phash/dhash (imagehash, slower, an optional dependency) only when
some rule — shadow rules included — names them, and the 8 dihedral PDQ hashes only when the policy's
``[hashing] dihedral`` is on.
"""

from __future__ import annotations

from dataclasses import replace

from gate.hashing.options import HashOptions
from gate.policy.model import Policy
from gate.types import SignalType


def hash_options(policy: Policy, base: HashOptions | None = None) -> HashOptions:
    """``base`` carries the process settings (e.g. ``max_image_pixels``); the policy sets the rest."""
    wanted = policy.perceptual_signals
    return replace(
        base or HashOptions(),
        dihedral=policy.hashing.dihedral,
        min_pdq_quality=policy.hashing.min_pdq_quality,
        phash=SignalType.PHASH in wanted,
        dhash=SignalType.DHASH in wanted,
    )
