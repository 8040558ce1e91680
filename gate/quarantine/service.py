"""How the evidence store runs inside the gate: the start-up key check, the purge job, readiness.

``gate.deps.open_deps`` wires these; they live here so the quarantine rules stay in one package.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from gate.policy.model import Policy
from gate.policy.reload import PolicyHolder
from gate.quarantine.keys import Keyring, MissingEvidenceKey
from gate.store.evidence import Evidence
from gate.store.pool import StoreUnavailable
from gate.store.rewrap import key_usage
from gate.types import Verdict

log = logging.getLogger("gate.evidence")


def quarantining_parts(policy: Policy) -> list[str]:
    """Where the policy can store evidence: rule names and built-in choices, for error messages."""
    parts = [f"rules.{r.name}" for r in policy.rules if not r.shadow and r.action is Verdict.QUARANTINE]
    for key in ("on_unhashable", "on_unscannable", "on_matcher_error", "on_low_quality"):
        if getattr(policy, key) is Verdict.QUARANTINE:
            parts.append(key)
    parts += [
        f'on_unscannable_by_type."{t}"' for t, v in policy.unscannable_by_type if v is Verdict.QUARANTINE
    ]
    if policy.evidence.keep_rejected and policy.can_act(Verdict.REJECT):
        parts.append("evidence.keep_rejected")
    return parts


def missing_key(policy: Policy) -> str | None:
    """Why this policy needs an evidence key (None when it keeps no evidence): the parts that store it."""
    if not policy.keeps_evidence:
        return None
    where = ", ".join(quarantining_parts(policy)[:5])
    return (
        f"the policy stores encrypted evidence ({where}) but no evidence key is configured. "
        "Create one with `upload-gate keys init /path/to/evidence-keys.json` and set "
        "GATE_EVIDENCE_KEYS_FILE to that path (or set GATE_EVIDENCE_KEY)"
    )


def require_key(keyring: Keyring | None, policy: Policy) -> None:
    """At start-up: a policy that can keep evidence and no key stops the gate as a missing key."""
    why = missing_key(policy) if keyring is None else None
    if why is not None:
        raise MissingEvidenceKey(why)


def key_check(keyring: Keyring | None) -> Callable[[Policy], Awaitable[list[str]]]:
    """A policy validator for reloads: a new policy that can keep evidence needs a key; without one it
    is refused and the last good policy stays in force."""

    async def check(policy: Policy) -> list[str]:
        why = missing_key(policy) if keyring is None else None
        return [f"evidence: {why}"] if why else []

    return check


async def check_keys_cover_evidence(evidence: Evidence) -> dict[str, int]:
    """At start-up: evidence sealed under keys this keyring lacks means the keyring was lost or swapped
    (a volume not carried over, another environment's key). Said loudly, never fatal: new evidence is
    still sealed, and the operator can restore the old keyring. Returns {missing key id: items}."""
    try:
        usage = await key_usage(evidence.db)
    except StoreUnavailable:
        return {}  # Postgres is down: the decision log says so
    keyring = evidence.vault.keyring
    have = keyring.keys if keyring else {}
    missing = {key: n for key, n in usage.items() if key not in have}
    if missing:
        log.error(
            "%d evidence item(s) are sealed under key(s) this keyring does not hold (%s): they cannot be "
            "reviewed or exported until the keyring they were sealed with is restored (%s)",
            sum(missing.values()),
            ", ".join(sorted(missing)),
            keyring.path if keyring and keyring.path else "GATE_EVIDENCE_KEYS_FILE",
        )
    return missing


def readiness(evidence: Evidence, policy: PolicyHolder) -> Callable[[], Awaitable[tuple[bool, str]]]:
    """Asks Postgres on every call. Unreachable is not ready while the policy can keep evidence: held
    uploads then get the policy's ``[evidence] on_store_failure`` answer instead of being held, which
    is a gate doing less than its policy says (clean uploads still flow, as with a failing matcher).
    A policy that keeps no evidence does not need the store: ready, with the outage in the detail."""

    async def ready() -> tuple[bool, str]:
        try:
            await evidence.db.fetchval("SELECT 1")
        except Exception as exc:
            if not policy.current.keeps_evidence:
                return True, f"evidence store unavailable ({type(exc).__name__}); this policy keeps none"
            choice = policy.current.evidence.on_store_failure
            return False, f"evidence store unavailable ({type(exc).__name__}); on_store_failure = {choice}"
        keyring = evidence.vault.keyring
        key = keyring.active.id if keyring else "no key"
        return True, f"evidence store up (active key {key})"

    return ready
