"""``HmaRebuilds``: after HMA's PDQ index is rebuilt, the stored PDQ hashes of the window are looked up
again (``RetroHunt.hma_pass_held``) — once per index change across every process on the gate's
Postgres, not once per process.

Every replica and ``upload-gate watch`` watch HMA's ``GET /m/index/status`` and notice the same rebuild.
Taking turns under the retro-hunt lock (``gate.scan.retro_lock``) kept them from recording a hit twice,
but each still sent HMA a whole window of lookups, and HMA's one worker is the bottleneck. So Postgres
keeps the ``built_to`` of the index the stored hashes were last looked up against (``retro_hma_index``),
read and written under that lock: a process whose turn comes after another looked the same index up
skips its lookups and says so once.

What counts as owed is "HMA's index now differs from the one last looked up against", decided under the
lock with HMA's ``built_to`` read again there, not the one this process saw when it noticed the change:

* A process that waited, or that starts with an older view, looks at HMA's index as it is when its turn
  comes, so an index another process has looked up already is never looked up again.
* When HMA's index moves on while a pass runs, the pass is recorded for the index it started with (its
  first lookups saw only that one) and the newer index is owed a pass of its own, which whichever process
  notices it first runs. Restarting the pass on every rebuild instead would never finish while curators
  keep adding content.
* A pass that failed (a lookup failed: ``tally.stopped``), raised, or was cut (the process stopped or
  died, the lock going with its connection) records nothing, so the index is still owed (the first two
  are counted: ``upload_gate_retro_runs_total{kind="hma"}``, outcome stopped or failed): a process
  waiting for the lock runs it next, any other at its next look at HMA (each look reads the record: one
  small query), and the one whose pass did not complete again after GATE_RETRO_HMA_RETRY_INTERVAL (or
  at once when the index changes again).
* The first process to see HMA on this Postgres (no row yet) records the index it sees without a pass:
  decisions were judged against HMA as it was when they were made, as the gate has always started. From
  then on, an index that changed while no gate was watching is owed a pass when a gate starts.
* A different ``built_to``, not only a later one, is a change: an HMA database restored from a backup is
  an index the stored hashes were not looked up against.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from gate.matching.hma import HmaMatcher
from gate.scan.retro import RetroHunt, window_start
from gate.scan.retro_lock import one_hunt
from gate.settings import Settings
from gate.store.pool import Pool, StoreUnavailable

log = logging.getLogger("gate.scan")

INDEX = "pdq"  # the HMA index stored hashes are looked up in again


async def covered(db: Pool) -> int | None:
    """The ``built_to`` of the index stored hashes were last looked up against; None: none recorded yet."""
    value = await db.fetchval("SELECT built_to FROM retro_hma_index WHERE signal_type = $1", INDEX)
    return None if value is None else int(value)


async def looked_up(db: Pool, built_to: int) -> None:
    """A pass over the window completed against the index ``built_to``."""
    await db.execute(
        "INSERT INTO retro_hma_index (signal_type, built_to, looked_up) VALUES ($1, $2, true)"
        " ON CONFLICT (signal_type) DO UPDATE"
        " SET built_to = EXCLUDED.built_to, looked_up = true, updated_at = now()",
        INDEX,
        built_to,
    )


@dataclass
class HmaRebuilds:
    settings: Settings
    hma: HmaMatcher
    db: Pool
    hunt: RetroHunt
    seen: int | None = None  # the built_to this process last saw
    retry_at: float = 0.0  # time.monotonic() before which an owed index is not tried again here
    db_down: bool = False  # the last look could not read the record

    async def built_to(self) -> int:
        index = (await self.hma.client.index_status(within=self.settings.hma_timeout)).get(INDEX)
        return index.built_to or 0 if index is not None and index.present else 0  # 0: no index yet

    async def step(self) -> None:
        """One look at HMA's index (every GATE_HMA_STATUS_INTERVAL)."""
        built = await self.built_to()
        changed = self._saw(built)
        if changed:
            self.retry_at = 0.0
        try:
            done = await covered(self.db)
        except StoreUnavailable as exc:
            # Said once per outage, not every look: what is owed stays in Postgres for when it answers.
            if not self.db_down:
                log.warning("retro-hunt (HMA): waiting for Postgres to tell what HMA index is owed: %s", exc)
            self.db_down = True
            return
        self.db_down = False
        if done is None:
            # ON CONFLICT: another process starting at once may have recorded its own view first.
            status = await self.db.execute(
                "INSERT INTO retro_hma_index (signal_type, built_to, looked_up) VALUES ($1, $2, false)"
                " ON CONFLICT (signal_type) DO NOTHING",
                INDEX,
                built,
            )
            if status == "INSERT 0 1":
                log.info("retro-hunt (HMA): HMA's PDQ index built_to %d is where re-lookups start", built)
            return
        if done == built:
            if changed:
                self._already(built)
            return
        if time.monotonic() < self.retry_at:
            return
        await self._pass()

    async def _pass(self) -> None:
        s = self.settings
        async with one_hunt(self.db, "retro-hunt (HMA)"):
            built = await self.built_to()  # HMA's index now: it may have moved on while this one waited
            self._saw(built)
            done = await covered(self.db)
            if done == built:
                self._already(built)
                return
            # After a pass that does not complete, this process waits before trying the same index again
            # (unless HMA's index changes meanwhile): a failing HMA gets one lookup an interval, not a window.
            self.retry_at = time.monotonic() + s.retro_hma_retry_interval  # until recorded done, below
            log.info(
                "retro-hunt: HMA's PDQ index built_to %d (stored hashes last looked up against built_to %s):"
                " looking stored hashes up again",
                built,
                done,
            )
            tally = await self.hunt.hma_pass_held(
                window_start(s.retro_hma_window_days), s.retro_hma_rate, f"retro: HMA index built_to {built}"
            )
            if tally.stopped is not None:
                log.error(
                    "retro-hunt (HMA) for built_to %d stopped, not recorded as done (tried again within %g s,"
                    " or by another process): %s; so far %s",
                    built,
                    s.retro_hma_retry_interval,
                    tally.stopped,
                    tally.summary(),
                )
                return
            await looked_up(self.db, built)
        log.info("retro-hunt (HMA) done: %s", tally.summary())

    def _saw(self, built: int) -> bool:
        """HMA's index is now ``built``; True when that changed since the last look (its answers cached
        in this process came from the index before, pass or not: they go)."""
        changed = self.seen is not None and built != self.seen
        if changed:
            self.hma.cache.clear()
        self.seen = built
        return changed

    @staticmethod
    def _already(built: int) -> None:
        log.info(
            "retro-hunt (HMA): HMA's PDQ index built_to %d was looked up again by another process: "
            "skipping its lookups here",
            built,
        )
