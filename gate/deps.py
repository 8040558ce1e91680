"""The composition root: the gate's long-lived parts built from settings, in one place, in start-up order,
and torn down in reverse.

Each part holds one resource and has a small factory below that reads only its own settings and
registers its own shutdown. The order is the one thing this module decides: parts that validate the
policy (matchers with banks) exist before the policy loads, so an invalid policy stops start-up; the
database and what lives on its one pool (the decision log, evidence, the allowlist) come next; the
judge is built from what it uses. ``open_base`` and ``open_judge`` are that order's shared part:
``gate.scan.parts`` builds the scans on them too, so a scan judges exactly as the gate does.
A feature that adds a part (a matcher, a sink, a readiness check, a background job) adds it here.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.auth.offline import OfflineCheck, PdsFacts
from gate.hashing.hasher import Hasher
from gate.judge import CacheKey, Judge
from gate.labels.key import LabelerKey, LabelerKeyError
from gate.labels.labeler import Labeler
from gate.labels.store import LabelStore
from gate.matching.bank_cache import BankCache
from gate.matching.hma import HmaMatcher
from gate.matching.hma_banks import HmaBankCheck
from gate.matching.local import LocalBanks
from gate.matching.matcher import Matcher
from gate.notify.sink import NotifyingSink
from gate.notify.webhook import Notifier, NullNotifier, Webhook
from gate.policy.model import Policy
from gate.policy.reload import PolicyHolder
from gate.proxy.budget import MemoryBudget
from gate.proxy.upstream import Upstream
from gate.quarantine import service as quarantine
from gate.quarantine.allowlist import Allowlist
from gate.quarantine.keys import Keyring
from gate.quarantine.withheld import WithheldBlobs
from gate.record import DecisionSink
from gate.scan.retro_job import RetroJob
from gate.settings import Settings
from gate.store.blocked import blocked_sha256
from gate.store.database import Database
from gate.store.decision_log import DecisionLog
from gate.store.evidence import Evidence
from gate.store.keeper import PostgresKeeper
from gate.store.purge import purge_periodically
from gate.ttl_cache import TtlCache
from gate.types import Decision

log = logging.getLogger(__name__)

# A readiness check answers (ready, detail); the admin listener's /readyz runs them all.
ReadinessCheck = Callable[[], Awaitable[tuple[bool, str]]]
PolicyValidator = Callable[[Policy], Awaitable[list[str]]]
# A coroutine run for as long as the gate serves (file watchers, purges...).
Job = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Deps:
    settings: Settings
    policy: PolicyHolder
    judge: Judge  # hash → match → evaluate, for every path that judges bytes
    upstream: Upstream
    # Bytes held in memory at once across uploads and the API (gate.api): one budget for the process.
    budget: MemoryBudget
    sink: DecisionSink  # the decision log (and the webhook, when configured)
    database: Database  # Postgres (DATABASE_URL or the embedded one) and the process's one pool
    evidence: Evidence  # sealed evidence of blocked uploads (gate/store/evidence.py)
    allowlist: Allowlist  # released hashes (a matcher too); the review site adds to it
    withheld: WithheldBlobs  # blobs getBlob answers "not found" for
    notifier: Notifier  # signed webhooks on quarantine/reject/review events, or NullNotifier
    offline: OfflineCheck | None  # credentials checked before a body is read; None: no PDS secret given
    labeler: Labeler | None  # signs and serves labels; None: no GATE_LABELER_DID, or no key here
    readiness: dict[str, ReadinessCheck]
    background: list[Job]


@contextlib.asynccontextmanager
async def open_deps(
    settings: Settings, *, spool: Path | None = None, admitted: bool = False
) -> AsyncIterator[Deps]:
    """``spool``: the decision log's outage spool, when not ``serve``'s (a spool has one writer).
    ``admitted``: every body this process judges is admitted whole before it is read (its peak, the
    hashing worker's copy included: ``upload-gate watch``), so the hasher reserves nothing of its own."""
    async with contextlib.AsyncExitStack() as stack:
        base = await open_base(settings, stack)
        database, policy = base.database, base.policy
        # The embedded Postgres is ours to keep running (and to report on); DATABASE_URL's is not.
        keeper = PostgresKeeper(database.embedded) if database.embedded is not None else None
        decision_log = DecisionLog.from_settings(settings, database.pool, spool)
        await decision_log.start()
        stack.push_async_callback(decision_log.close)
        evidence = Evidence.on(database.pool, base.keyring)
        await quarantine.check_keys_cover_evidence(evidence)
        budget = MemoryBudget(settings.memory_budget_bytes)
        judge, allowlist = await open_judge(settings, stack, base, None if admitted else budget)
        upstream = Upstream(
            settings.upstream,
            settings.upstream_connect_timeout,
            settings.upstream_timeout,
            lane=settings.lean_passthrough,
        )
        await upstream.start()
        stack.push_async_callback(upstream.close)
        notifier = await open_webhook(settings, stack)
        sink: DecisionSink = decision_log if notifier is None else NotifyingSink(decision_log, notifier)
        withheld = WithheldBlobs()
        deps = Deps(
            settings=settings,
            policy=policy,
            judge=judge,
            upstream=upstream,
            budget=budget,
            sink=sink,
            database=database,
            evidence=evidence,
            allowlist=allowlist,
            withheld=withheld,
            notifier=notifier or NullNotifier(),
            offline=offline_check(settings),
            labeler=open_labeler(settings, database),
            readiness={},
            background=[],
        )
        deps.readiness = readiness(deps, base.hma, keeper)
        deps.background = jobs(deps, base.banks, keeper)
        yield deps


@dataclass
class Base:
    """What every process that judges stands on (``open_deps`` for serve and watch,
    ``gate.scan.parts`` for the scans), in the order ``open_base`` builds it."""

    keyring: Keyring | None
    banks: LocalBanks
    hma: HmaMatcher | None
    policy: PolicyHolder
    database: Database


async def open_base(settings: Settings, stack: contextlib.AsyncExitStack) -> Base:
    """Keys, banks, HMA and the policy checked against them (so an invalid policy stops start-up), then
    the database, whose pool ``stack`` closes last of all."""
    # Keys come from a file or the environment, never the database.
    keyring = Keyring.configured(settings.evidence_keys_file, settings.evidence_key)
    banks = LocalBanks(settings.banks_dir, BankCache(settings.bank_cache_dir))
    banks.load()
    hma = await open_hma(settings, stack)
    policy = await open_policy(settings, banks, hma, keyring)
    database = Database(settings)
    await database.start()
    stack.push_async_callback(database.stop)  # after everything that uses it has closed
    return Base(keyring, banks, hma, policy, database)


async def open_judge(
    settings: Settings, stack: contextlib.AsyncExitStack, base: Base, budget: MemoryBudget | None = None
) -> tuple[Judge, Allowlist]:
    """The judge on the base's matchers (local banks, HMA, the allowlist) and its hasher, which
    ``stack`` closes; the allowlist is returned too, for the review site and its watcher. Call it once
    the schema is there (the allowlist reads its rows at once). ``budget``: the one the bodies it
    judges are held under (serve's), so that it counts the hashing workers' copies too."""
    # Released hashes (reviewed false positives), in Postgres so that read-only bank files and
    # other replicas are no obstacle (gate.quarantine.allowlist).
    allowlist = Allowlist(base.database.pool, base.policy)
    await allowlist.start()
    hasher = Hasher(settings.hash_workers, budget=budget)
    hasher.start()
    stack.push_async_callback(hasher.close)
    matchers: list[Matcher] = [base.banks, *([base.hma] if base.hma else []), allowlist]
    cache: TtlCache[CacheKey, Decision] = TtlCache(settings.verdict_cache_size, settings.verdict_cache_ttl)
    return Judge(base.policy, hasher, matchers, cache), allowlist


async def open_hma(settings: Settings, stack: contextlib.AsyncExitStack) -> HmaMatcher | None:
    """The HMA matcher (None without GATE_HMA_URL), its status read once."""
    hma = HmaMatcher.from_settings(settings)
    if hma is not None:
        stack.push_async_callback(hma.aclose)
        await hma.start()
    return hma


async def open_policy(
    settings: Settings, banks: LocalBanks, hma: HmaMatcher | None, keyring: Keyring | None
) -> PolicyHolder:
    """The policy, loaded and checked: bank names against the local banks (and HMA's, asked on every
    load), and a policy that can quarantine stops start-up while no evidence key is configured (on
    reload, it is refused)."""
    validators: list[PolicyValidator] = []
    if hma is not None:
        validators.append(HmaBankCheck(hma.client, settings.hma_timeout, local_banks=banks.names))
    policy = PolicyHolder(
        settings.policy_path,
        lambda: {"local": banks.names()},
        validators,
        max_image_pixels=settings.max_image_pixels,
    )
    await policy.load_initial()
    quarantine.require_key(keyring, policy.current)
    policy.add_validator(quarantine.key_check(keyring))
    return policy


async def open_webhook(settings: Settings, stack: contextlib.AsyncExitStack) -> Webhook | None:
    """Signed webhooks (None unless GATE_WEBHOOK_URL and its secret are set)."""
    webhook = Webhook.from_settings(settings)
    if webhook is not None:
        await webhook.start()
        stack.push_async_callback(webhook.close)
    return webhook


def offline_check(settings: Settings) -> OfflineCheck | None:
    """Credentials checked with the PDS's secret before a body is read (None: no secret given)."""
    if not settings.pds_jwt_secret:
        return None
    return OfflineCheck(PdsFacts(settings.pds_jwt_secret, settings.pds_service_did, settings.pds_public_url))


def open_labeler(settings: Settings, database: Database) -> Labeler | None:
    """The labeler that serves labels (None without GATE_LABELER_DID). Its key stays out of the
    database (gate.labels.key); a DID with no key here means another process serves the labels."""
    key = LabelerKey.configured(settings.labeler_key_file, settings.labeler_key)
    if settings.labeler_did is None:
        if key is not None:
            raise LabelerKeyError("a labeler key is configured without GATE_LABELER_DID (the labels' src)")
        return None
    if key is None:
        log.warning("GATE_LABELER_DID is set but no labeler key is: this process does not serve labels")
        return None
    return Labeler(
        settings.labeler_did,
        key,
        LabelStore(database.pool),
        poll_interval=settings.labels_poll_interval,
        max_subscribers=settings.labels_max_subscribers,
    )


def readiness(deps: Deps, hma: HmaMatcher | None, keeper: PostgresKeeper | None) -> dict[str, ReadinessCheck]:
    """What /readyz asks, by name."""
    policy, sink = deps.policy, deps.sink

    async def policy_ready() -> tuple[bool, str]:
        return True, f"policy {policy.current.version}"

    async def sink_ready() -> tuple[bool, str]:
        return (True, "accepting") if sink.accepting() else (False, "decision log not accepting")

    checks: dict[str, ReadinessCheck] = {}
    if hma is not None:
        checks["hma"] = hma.readiness
    if keeper is not None:
        checks["postgres"] = keeper.readiness
    checks["evidence"] = quarantine.readiness(deps.evidence, policy)
    checks["policy"] = policy_ready
    checks["decision_log"] = sink_ready
    return checks


def jobs(deps: Deps, banks: LocalBanks, keeper: PostgresKeeper | None) -> list[Job]:
    """What runs for as long as the gate serves."""
    settings, policy, pool = deps.settings, deps.policy, deps.database.pool
    out: list[Job] = [keeper.watch] if keeper is not None else []

    async def watch_banks() -> None:
        # A bank file deleted on purpose can leave a rule naming a bank that no longer exists:
        # re-check the policy at once so the problem is logged and counted, not silent.
        await banks.watch(settings.reload_interval, on_change=policy.reload)

    async def watch_policy() -> None:
        await policy.watch(settings.reload_interval)

    async def purge_evidence() -> None:
        await purge_periodically(pool, settings.evidence_purge_interval)

    async def watch_withheld() -> None:
        await deps.withheld.watch(functools.partial(blocked_sha256, pool), settings.withheld_refresh_interval)

    async def watch_allowlist() -> None:
        await deps.allowlist.watch(settings.reload_interval)

    if deps.labeler is not None:
        out.append(deps.labeler.watch)
    # After a bank reload adds hashes, stored decisions are re-judged against the new entries.
    hma = next((m for m in deps.judge.matchers if isinstance(m, HmaMatcher)), None)
    retro = RetroJob(
        settings, banks, pool, deps.judge, deps.sink, deps.notifier, deps.evidence.vault, deps.withheld,
        deps.budget, hma,
    )  # fmt: skip
    return [*out, watch_banks, watch_policy, purge_evidence, watch_withheld, watch_allowlist, retro.run]
