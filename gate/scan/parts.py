"""What a scan outside the serving gate needs, built as ``gate.deps`` builds the gate's own: the same
banks, HMA matcher, policy (checked the same way), allowlist, hasher and judge, the evidence vault, the
takedown guard and the webhook — on the gate's Postgres (DATABASE_URL, or the embedded one of
GATE_DATA_DIR, joined if the gate runs). No decision-log queue or spool: the scan writes its own rows
(``gate.scan.store``), since the spool belongs to the serving gate.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gate.deps import open_hma, open_policy, open_webhook
from gate.hashing.hasher import Hasher
from gate.judge import CacheKey, Judge
from gate.matching.local import LocalBanks
from gate.matching.matcher import Matcher
from gate.notify.event import decision_event
from gate.notify.webhook import Webhook
from gate.pds_admin import PdsAdmin
from gate.policy.reload import PolicyHolder
from gate.quarantine.allowlist import Allowlist
from gate.quarantine.keys import Keyring
from gate.quarantine.takedowns import Takedowns
from gate.record import DecisionRecord
from gate.settings import Settings
from gate.store.database import Database
from gate.store.evidence import Evidence
from gate.store.pool import Pool
from gate.ttl_cache import TtlCache
from gate.types import Decision

log = logging.getLogger("gate.scan")


@dataclass
class Parts:
    settings: Settings
    policy: PolicyHolder
    banks: LocalBanks
    judge: Judge
    database: Database
    evidence: Evidence
    takedowns: Takedowns
    webhook: Webhook | None

    @property
    def pool(self) -> Pool:
        return self.database.pool

    def notify(self, record: DecisionRecord) -> None:
        """The webhook event for a blocked blob (``scan.rejected``, ``retro.quarantined``...)."""
        event = decision_event(record)
        if event is not None and self.webhook is not None:
            self.webhook.submit(event)


@contextlib.asynccontextmanager
async def open_parts(settings: Settings) -> AsyncIterator[Parts]:
    async with contextlib.AsyncExitStack() as stack:
        keyring = Keyring.configured(settings.evidence_keys_file, settings.evidence_key)
        banks = LocalBanks(settings.banks_dir)
        banks.load()
        hma = await open_hma(settings, stack)
        policy = await open_policy(settings, banks, hma, keyring)
        database = Database(settings)
        await database.start()
        stack.push_async_callback(database.stop)
        await database.pool.get()  # the schema (migrations) before anything reads it
        allowlist = Allowlist(database.pool, policy)
        await allowlist.start()
        hasher = Hasher(settings.hash_workers)
        hasher.start()
        stack.push_async_callback(hasher.close)
        matchers: list[Matcher] = [banks, *([hma] if hma else []), allowlist]
        cache: TtlCache[CacheKey, Decision] = TtlCache(
            settings.verdict_cache_size, settings.verdict_cache_ttl
        )
        pds = (
            PdsAdmin(settings.pds_admin_base, settings.pds_admin_password)
            if settings.pds_admin_password
            else None
        )
        webhook = await open_webhook(settings, stack)
        yield Parts(
            settings=settings,
            policy=policy,
            banks=banks,
            judge=Judge(policy, hasher, matchers, cache),
            database=database,
            evidence=Evidence.on(database.pool, keyring),
            takedowns=Takedowns(database.pool, pds, settings.takedown_daily_cap),
            webhook=webhook,
        )
