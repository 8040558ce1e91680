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

from gate.deps import open_base, open_judge, open_webhook
from gate.judge import Judge
from gate.matching.local import LocalBanks
from gate.notify.event import decision_event
from gate.notify.webhook import Webhook
from gate.pds_admin import PdsAdmin
from gate.policy.reload import PolicyHolder
from gate.quarantine.takedowns import Takedowns
from gate.record import DecisionRecord
from gate.settings import Settings
from gate.store.database import Database
from gate.store.evidence import Evidence
from gate.store.pool import Pool

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
        base = await open_base(settings, stack)
        database = base.database
        await database.pool.get()  # the schema (migrations) before anything reads it
        # No budget for the hasher: a scan admits each blob's whole peak, its worker's copy included,
        # before reading it (gate.scan.scanner), so that no worker waits while holding bytes.
        judge, _ = await open_judge(settings, stack, base)
        pds = PdsAdmin.from_settings(settings)
        webhook = await open_webhook(settings, stack)
        yield Parts(
            settings=settings,
            policy=base.policy,
            banks=base.banks,
            judge=judge,
            database=database,
            evidence=Evidence.on(database.pool, base.keyring),
            takedowns=Takedowns(database.pool, pds, settings.takedown_daily_cap),
            webhook=webhook,
        )
