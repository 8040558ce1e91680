"""Checking a policy against the banks HMA really has (``GET /c/banks``), at start-up and on reload.

HMA answers ``{}`` for a bank name it does not know, so a typo in the policy would silently match
nothing: such a policy is refused. A bank the policy relies on whose ``matching_enabled_ratio`` is below
1.0 is skipped at random by ``GET /m/lookup`` (only POST can bypass the coinflip): that is a warning.

Which names must exist: ``hma_banks`` and the banks of rules whose only source is ``hma``; a rule for
both sources (``source = "any"``) may name a bank of either, so its names must exist in HMA or among the
local banks (when those are known). When HMA cannot
be reached the check cannot be made: it logs a warning and accepts the policy (lookups will then fail
and ``on_matcher_error`` applies); refusing would tie the gate's start-up to HMA's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gate import metrics
from gate.matching.hma_client import HmaBank, HmaCallError, HmaClient
from gate.policy.model import Policy
from gate.policy.plan import hma_banks
from gate.signals import MatchSource

log = logging.getLogger(__name__)


def required_banks(policy: Policy) -> dict[str, str]:
    """Bank name → where the policy names it, for every name that must exist in HMA."""
    where: dict[str, str] = {}
    for name in sorted(policy.hma_banks or ()):
        where[name] = "hma_banks"
    for rule in policy.rules:
        if rule.sources == frozenset({MatchSource.HMA}):
            for name in sorted(rule.banks or ()):
                where.setdefault(name, f"rule {rule.name!r}")
    return where


def check_banks(
    policy: Policy, banks: list[HmaBank], local: frozenset[str] | None = None
) -> tuple[list[str], list[str]]:
    """(problems that refuse the policy, warnings) for ``policy`` against HMA's ``banks``.

    ``local``: the local bank names, to check rules for both sources (None = not known here).
    """
    by_name = {bank.name: bank for bank in banks}
    known = ", ".join(sorted(by_name)) or "none"
    problems = [
        f"{where} names HMA bank {name!r}, which HMA does not have (HMA has: {known})"
        for name, where in required_banks(policy).items()
        if name not in by_name
    ]
    if local is not None:
        for rule in policy.rules:
            if len(rule.sources) > 1 and MatchSource.HMA in rule.sources:
                problems.extend(
                    f"rule {rule.name!r} names bank {name!r}, which neither HMA nor the local banks have"
                    for name in sorted(rule.banks or ())
                    if name not in by_name and name not in local
                )
    relied = hma_banks(policy)
    names = sorted(by_name) if relied is None else [n for n in relied if n in by_name]
    warnings = []
    for name in names:
        ratio = by_name[name].matching_enabled_ratio
        metrics.HMA_BANK_RATIO.labels(name).set(ratio)
        if ratio < 1.0:
            warnings.append(
                f"HMA bank {name!r} has matching_enabled_ratio {ratio:g} < 1.0: GET /m/lookup skips it "
                f"for about {1 - ratio:.0%} of uploads; set it to 1.0 in HMA"
            )
    return problems, warnings


class HmaBankCheck:
    """A ``PolicyHolder`` validator: ``await check(policy)`` → problems (empty = acceptable)."""

    def __init__(
        self,
        client: HmaClient,
        within: float = 5.0,
        local_banks: Callable[[], frozenset[str]] | None = None,
    ) -> None:
        self.client = client
        self.within = within
        self.local_banks = local_banks

    async def __call__(self, policy: Policy) -> list[str]:
        if hma_banks(policy) == ():
            return []  # nothing in this policy relies on HMA
        try:
            banks = await self.client.banks(within=self.within)
        except HmaCallError as exc:
            log.warning("cannot check the policy's HMA banks (GET /c/banks: %s); accepting it", exc)
            return []
        local = self.local_banks() if self.local_banks is not None else None
        problems, warnings = check_banks(policy, banks, local)
        for warning in warnings:
            log.warning("%s", warning)
        return problems


async def hma_bank_names(client: HmaClient, within: float = 5.0) -> frozenset[str]:
    """The names HMA has, for the policy loader's ``known_banks["hma"]``."""
    return frozenset(bank.name for bank in await client.banks(within=within))
