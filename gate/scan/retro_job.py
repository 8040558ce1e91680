"""The retro-hunt the gate runs by itself: after a local bank reload adds hashes, the new entries are
matched against the stored decisions (``GATE_RETRO_WINDOW_DAYS``) and the hits judged, acted on per
``[scan]``, recorded and announced (webhooks). One hunt at a time, off the reload itself, and across every
process on the gate's Postgres (``gate.scan.retro_lock``): each hit's row is written to Postgres at once,
not queued in the decision log, so that a hunt waiting its turn finds it re-judged. A hunt that fails is
logged and counted (``upload_gate_retro_runs_total``, outcome failed: its entries are not hunted again
until ``upload-gate scan retro``), and the next reload tries its own entries. With HMA, its index is
watched too: a rebuild gets one pass over the stored PDQ hashes across every process
(``gate.scan.retro_hma``).
"""

from __future__ import annotations

import asyncio
import logging

from gate.blob_fetch import PdsSync
from gate.judge import Judge
from gate.matching.bank_set import BankSet
from gate.matching.hma import HmaMatcher
from gate.matching.local import LocalBanks
from gate.notify.sink import announce
from gate.notify.webhook import Notifier
from gate.pds_admin import PdsAdmin
from gate.proxy.budget import MemoryBudget
from gate.quarantine.takedowns import Takedowns
from gate.quarantine.withheld import WithheldBlobs
from gate.record import DecisionRecord, DecisionSink
from gate.scan.act import ScanActor
from gate.scan.bank_diff import added
from gate.scan.retro import RetroHunt, window_start
from gate.scan.retro_hma import HmaRebuilds
from gate.scan.store import insert_decision
from gate.settings import Settings
from gate.store.pool import Pool, StoreUnavailable
from gate.store.vault import Vault
from gate.watch import every

log = logging.getLogger("gate.scan")


class RetroJob:
    def __init__(
        self,
        settings: Settings,
        banks: LocalBanks,
        db: Pool,
        judge: Judge,
        sink: DecisionSink,
        notifier: Notifier,
        vault: Vault,
        withheld: WithheldBlobs,
        budget: MemoryBudget,
        hma: HmaMatcher | None = None,
    ) -> None:
        self.settings = settings
        self.budget = budget  # the process's own (serve's: the uploads' too)
        self.db = db
        self.judge = judge
        self.sink = sink  # only while Postgres cannot take a row (it queues, then spools)
        self.notifier = notifier
        self.vault = vault
        self.withheld = withheld
        self.hma = hma
        self._queue: asyncio.Queue[tuple[BankSet, BankSet]] = asyncio.Queue()
        banks.reloaded.append(lambda old, new: self._queue.put_nowait((old, new)))

    async def _record(self, record: DecisionRecord) -> None:
        """The row in Postgres before the hunt goes on (the next hunt reads it), then the webhook. A row
        Postgres cannot take now goes to the decision log, which keeps it (and announces it) as any
        decision: what was acted on is recorded, if later."""
        try:
            await insert_decision(self.db, record)
        except StoreUnavailable as exc:
            log.error("retro decision %s left to the decision log: %s", record.id, exc)
            self.sink.submit(record)
            return
        announce(self.notifier, record)

    async def run(self) -> None:
        s = self.settings
        pds = PdsAdmin.from_settings(s)
        actor = ScanActor(self.vault, Takedowns(self.db, pds, s.takedown_daily_cap), "gate:retro")
        async with PdsSync(
            s.upstream, admin_password=s.pds_admin_password, max_bytes=s.max_upload_bytes
        ) as sync:
            hunt = RetroHunt(
                self.db,
                self.judge,
                actor,
                self._record,
                blobs=sync,
                withheld=self.withheld,
                budget=self.budget,
            )
            async with asyncio.TaskGroup() as group:
                if self.hma is not None:
                    rebuilds = HmaRebuilds(s, self.hma, self.db, hunt)
                    group.create_task(
                        every(
                            s.hma_status_interval,
                            rebuilds.step,
                            what="HMA index watch for retro-hunts",
                            now=True,
                        )
                    )
                group.create_task(self._bank_reloads(hunt))

    async def _bank_reloads(self, hunt: RetroHunt) -> None:
        s = self.settings
        while True:
            old, new = await self._queue.get()
            try:
                diff = await asyncio.to_thread(added, old, new)
                if not len(diff):
                    continue
                log.info("retro-hunt: %d new bank entries against stored decisions", len(diff))
                tally = await hunt.run(diff, window_start(s.retro_window_days))
                log.info("retro-hunt done: %s", tally.summary())
            except Exception:
                log.exception("retro-hunt after bank reload %s failed", new.version)
