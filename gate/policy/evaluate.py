"""``evaluate(policy, hashes, result) → Decision``: the pure heart of the gate.

No I/O, no clock, no randomness: the same inputs always give the same decision, which is what makes
shadow rules, dry runs over old decisions and table tests possible.

Order of judgement:
1. an exact match in an allowlist bank forwards at once (exact only: a perceptual allowlist would wave
   near-duplicates of known-good images through, and a near-duplicate is how banked content is disguised);
2. every active rule fires on the matches it selects; the built-in choices add candidates when a matcher
   failed (``on_matcher_error``), an image could not be hashed (``on_unhashable`` / ``on_low_quality``) or
   the media cannot be perceptually hashed at all (``on_unscannable`` and its per-type overrides);
3. the most severe candidate wins (reject > quarantine > forward); on a tie a rule beats a built-in
   choice and an earlier rule beats a later one.
Shadow rules go through steps 2-3 on their own and only fill ``Decision.shadow``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from gate.policy.model import Policy, Rule
from gate.types import SEVERITY, Decision, Hashes, Match, MatchResult, ShadowOutcome, Unhashable, Verdict


@dataclass(frozen=True, slots=True)
class _Candidate:
    verdict: Verdict
    rule: str
    reason: str
    matches: tuple[Match, ...]
    rank: tuple[int, int, int]  # (severity, rule beats built-in, earlier beats later)


def _is_allowlisted(policy: Policy, match: Match) -> bool:
    return match.source == "local" and match.bank in policy.allowlist_banks


def _rule_candidates(rules: tuple[Rule, ...], matches: tuple[Match, ...]) -> list[_Candidate]:
    out: list[_Candidate] = []
    for index, rule in enumerate(rules):
        selected = tuple(m for m in matches if rule.selects(m.source, m.bank, m.signal_type, m.distance))
        if selected:
            rank = (SEVERITY[rule.action], 1, -index)
            out.append(_Candidate(rule.action, rule.name, "match", selected, rank))
    return out


def unscannable_choice(policy: Policy, media_type: str) -> tuple[str, Verdict]:
    """The built-in choice for media without a perceptual hash: a per-type override or the default."""
    sniffed = media_type.lower()
    for pattern, verdict in policy.unscannable_by_type:
        if fnmatchcase(sniffed, pattern):
            return f"on_unscannable_by_type:{pattern}", verdict
    return "on_unscannable", policy.on_unscannable


def _builtin_candidates(policy: Policy, hashes: Hashes, result: MatchResult) -> list[_Candidate]:
    out: list[_Candidate] = []

    def add(verdict: Verdict, rule: str, reason: str, order: int) -> None:
        out.append(_Candidate(verdict, rule, reason, (), (SEVERITY[verdict], 0, -order)))

    if result.failures:
        add(policy.on_matcher_error, "on_matcher_error", "matcher_error", 0)
    if hashes.unhashable is not None:
        if hashes.unhashable is Unhashable.LOW_QUALITY and policy.on_low_quality is not None:
            add(policy.on_low_quality, "on_low_quality", "unhashable", 1)
        else:
            add(policy.on_unhashable, "on_unhashable", "unhashable", 1)
    elif not hashes.pdq:
        # Video, unknown bytes (also non-image bytes declared as image/png: the type is sniffed) and
        # image formats the hasher cannot decode: only exact-hash rules can judge these.
        rule, verdict = unscannable_choice(policy, hashes.media_type)
        add(verdict, rule, "unscannable", 2)
    return out


def _notes(hashes: Hashes, result: MatchResult) -> tuple[str, ...]:
    notes = [f"matcher_error: {f.matcher} {f.kind}" for f in result.failures]
    if hashes.unhashable is not None:
        notes.append(f"unhashable: {hashes.unhashable.value}")
    elif not hashes.pdq:
        notes.append(f"unscannable: {hashes.media_type}")
    return tuple(notes)


def evaluate(policy: Policy, hashes: Hashes, result: MatchResult) -> Decision:
    everything = result.matches
    allowed = tuple(m for m in everything if _is_allowlisted(policy, m) and m.signal_type.exact)
    if allowed:
        return Decision(
            verdict=Verdict.FORWARD,
            rule="allowlist",
            reason="allowlist",
            matches=allowed,
            policy_version=policy.version,
            all_matches=everything,
        )
    # Allowlist banks hold known-good content: no rule may act on a (perceptual) hit there.
    judged = tuple(m for m in everything if not _is_allowlisted(policy, m))
    active = tuple(r for r in policy.rules if not r.shadow)
    shadows = tuple(r for r in policy.rules if r.shadow)
    builtins = _builtin_candidates(policy, hashes, result)
    candidates = _rule_candidates(active, judged) + builtins
    if candidates:
        best = max(candidates, key=lambda c: c.rank)
        verdict, rule, reason, matches = best.verdict, best.rule, best.reason, best.matches
    else:
        verdict, rule, reason, matches = Verdict.FORWARD, "no_match", "no_match", ()
    shadow_fired = _rule_candidates(shadows, judged)
    shadow = None
    if shadow_fired:
        top = max(shadow_fired, key=lambda c: c.rank)
        shadow = ShadowOutcome(verdict=top.verdict, rule=top.rule, matches=top.matches)
    return Decision(
        verdict=verdict,
        rule=rule,
        reason=reason,
        matches=matches,
        policy_version=policy.version,
        all_matches=everything,
        shadow=shadow,
        # Any built-in choice means some part of the scan did not happen, whoever won.
        full_scan=not builtins,
        notes=_notes(hashes, result),
    )
