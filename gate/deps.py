"""Builds the gate's long-lived parts from settings, in one place, and tears them down in reverse.

Each part holds one resource. A feature that adds a part (a matcher, a decision sink, a readiness check,
a background task) adds it here, so the order of start-up is explicit: parts that validate the policy
(matchers with banks) exist before the policy is loaded, and an invalid policy stops start-up.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from gate.auth.offline import OfflineCheck, PdsFacts
from gate.hashing.hasher import Hasher
from gate.judge import Judge
from gate.matching.hma import HmaMatcher
from gate.matching.hma_banks import HmaBankCheck
from gate.matching.local import LocalBanks
from gate.matching.matcher import Matcher
from gate.notify.sink import NotifyingSink
from gate.notify.webhook import Notifier, NullNotifier, Webhook
from gate.policy.model import Policy
from gate.policy.reload import PolicyHolder
from gate.proxy.upstream import Upstream
from gate.quarantine import service as quarantine
from gate.quarantine.allowlist import Allowlist
from gate.quarantine.keys import Keyring
from gate.quarantine.withheld import WithheldBlobs
from gate.record import DecisionSink
from gate.settings import Settings
from gate.store.blocked import blocked_sha256
from gate.store.database import Database
from gate.store.decision_log import DecisionLog
from gate.store.evidence import Evidence
from gate.store.keeper import PostgresKeeper
from gate.store.purge import purge_periodically
from gate.ttl_cache import TtlCache

log = logging.getLogger(__name__)

# A readiness check answers (ready, detail); the admin listener's /readyz runs them all.
ReadinessCheck = Callable[[], Awaitable[tuple[bool, str]]]
PolicyValidator = Callable[[Policy], Awaitable[list[str]]]


@dataclass
class Deps:
    settings: Settings
    policy: PolicyHolder
    judge: Judge  # hash → match → evaluate, for every path that judges bytes
    hasher: Hasher
    banks: LocalBanks
    matchers: list[Matcher]
    upstream: Upstream
    sink: DecisionSink
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    # Signed webhooks on quarantine/reject/review events (NullNotifier when GATE_WEBHOOK_URL is unset).
    notifier: Notifier = field(default_factory=NullNotifier)
    # Checks upload credentials before a body is read, with the PDS's secret (None: no secret given).
    offline: OfflineCheck | None = None
    # Coroutines run for as long as the gate serves (file watchers, writers...).
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    database: Database | None = None  # Postgres (DATABASE_URL or the embedded one), started
    evidence: Evidence | None = None  # sealed evidence of blocked uploads (gate/store/evidence.py)
    withheld: WithheldBlobs = field(default_factory=WithheldBlobs)  # blobs getBlob answers "not found" for
    allowlist: Allowlist | None = None  # released hashes (a matcher too); the review site adds to it


@contextlib.asynccontextmanager
async def open_deps(settings: Settings) -> AsyncIterator[Deps]:
    async with contextlib.AsyncExitStack() as stack:
        banks = LocalBanks(settings.banks_dir)
        banks.load()
        matchers: list[Matcher] = [banks]
        validators: list[PolicyValidator] = []
        readiness: dict[str, ReadinessCheck] = {}
        # Keys come from a file or the environment, never the database. A policy that can quarantine
        # stops start-up while no key is configured (a missing key, checked once the policy is read),
        # and is refused on reload.
        keyring = Keyring.configured(settings.evidence_keys_file, settings.evidence_key)

        # HMA (optional): matcher, bank check for every policy load, readiness from its GET /status.
        hma = HmaMatcher.from_settings(settings)
        if hma is not None:
            stack.push_async_callback(hma.aclose)
            await hma.start()
            matchers.append(hma)
            validators.append(HmaBankCheck(hma.client, settings.hma_timeout, local_banks=banks.names))
            readiness["hma"] = hma.readiness

        policy = PolicyHolder(
            settings.policy_path,
            lambda: {"local": banks.names()},
            validators,
            max_image_pixels=settings.max_image_pixels,
        )
        await policy.load_initial()
        quarantine.require_key(keyring, policy.current)
        policy.add_validator(quarantine.key_check(keyring))

        # The decision log: DATABASE_URL, else the embedded Postgres in GATE_DATA_DIR (started here,
        # stopped after the log has drained). Postgres being down is not fatal: decisions spool.
        database = Database(settings)
        await database.start()
        stack.push_async_callback(database.stop)
        background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        if database.embedded is not None:  # ours to keep running (and to report on)
            keeper = PostgresKeeper(database.embedded)
            readiness["postgres"] = keeper.readiness
            background.append(keeper.watch)
        decision_log = DecisionLog.from_settings(settings, database.pool)
        await decision_log.start()
        stack.push_async_callback(decision_log.close)
        sink: DecisionSink = decision_log
        evidence = Evidence.on(database.pool, keyring)
        await quarantine.check_keys_cover_evidence(evidence)
        # Released hashes (reviewed false positives): rows of the policy's allowlist bank, in Postgres
        # so that read-only bank files and other replicas are no obstacle (gate.quarantine.allowlist).
        allowlist = Allowlist(database.pool, policy)
        await allowlist.start()
        matchers.append(allowlist)
        readiness["evidence"] = quarantine.readiness(evidence, policy)
        withheld = WithheldBlobs()

        hasher = Hasher(settings.hash_workers)
        hasher.start()
        stack.push_async_callback(hasher.close)
        judge = Judge(
            policy, hasher, matchers, TtlCache(settings.verdict_cache_size, settings.verdict_cache_ttl)
        )
        upstream = Upstream(settings.upstream, settings.upstream_connect_timeout, settings.upstream_timeout)
        await upstream.start()
        stack.push_async_callback(upstream.close)

        offline = None
        if settings.pds_jwt_secret:
            offline = OfflineCheck(
                PdsFacts(settings.pds_jwt_secret, settings.pds_service_did, settings.pds_public_url)
            )

        notifier: Notifier = NullNotifier()
        webhook = Webhook.from_settings(settings)
        if webhook is not None:
            await webhook.start()
            stack.push_async_callback(webhook.close)
            notifier = webhook
            sink = NotifyingSink(sink, webhook)

        async def policy_ready() -> tuple[bool, str]:
            return True, f"policy {policy.current.version}"

        async def sink_ready() -> tuple[bool, str]:
            return (True, "accepting") if sink.accepting() else (False, "decision log not accepting")

        readiness["policy"] = policy_ready
        readiness["decision_log"] = sink_ready

        async def watch_banks() -> None:
            # A bank file deleted on purpose can leave a rule naming a bank that no longer exists:
            # re-check the policy at once so the problem is logged and counted, not silent.
            await banks.watch(settings.reload_interval, on_change=policy.reload)

        async def watch_policy() -> None:
            await policy.watch(settings.reload_interval)

        async def purge_evidence() -> None:
            await purge_periodically(database.pool, settings.evidence_purge_interval)

        async def watch_allowlist() -> None:
            await allowlist.watch(settings.reload_interval)

        async def watch_withheld() -> None:
            await withheld.watch(
                functools.partial(blocked_sha256, database.pool), settings.withheld_refresh_interval
            )

        yield Deps(
            settings=settings,
            policy=policy,
            judge=judge,
            hasher=hasher,
            banks=banks,
            matchers=matchers,
            upstream=upstream,
            sink=sink,
            readiness=readiness,
            notifier=notifier,
            offline=offline,
            background=[
                *background,
                watch_banks,
                watch_policy,
                purge_evidence,
                watch_withheld,
                watch_allowlist,
            ],
            database=database,
            evidence=evidence,
            withheld=withheld,
            allowlist=allowlist,
        )
