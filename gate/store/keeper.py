"""``PostgresKeeper``: keeps the embedded Postgres running while the gate serves, and says how it is.

A postmaster that died without shutting down — killed, OOM-killed, crashed: its lock file
``postmaster.pid`` is left behind — is started again at once, then after 1, 2, 4 … 30 s between failed
attempts (a dying server's last processes can hold its shared memory for a moment). One that was shut
down cleanly by someone else (``pg_ctl stop``, a SIGTERM: the lock file is gone) is not fought, since
that is also how a host shutdown stops it: it is reported, and a restart of the gate starts it again.

Either way ``readiness`` reads the process state from the kernel on every call, so ``/readyz`` turns
red the moment the server dies, not at the next check. While it is down, decisions spool (see
``DecisionLog``) and evidence follows the policy's ``on_store_failure``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gate import metrics
from gate.store.embedded import EmbeddedPostgres, EmbeddedPostgresError
from gate.watch import every

log = logging.getLogger(__name__)


class PostgresKeeper:
    def __init__(
        self,
        embedded: EmbeddedPostgres,
        *,
        first_backoff: float = 1.0,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.embedded = embedded
        self.first_backoff, self.max_backoff = first_backoff, max_backoff
        self._clock = clock
        self._down_since: float | None = None  # when this keeper saw it dead (None: running)
        self._attempts = 0
        self._next_try = 0.0
        self._last_error = ""
        self._reported_clean_stop = False

    # ---- what /readyz shows: live, never a cached verdict ------------------------------------------

    async def readiness(self) -> tuple[bool, str]:
        return self.state()

    def state(self) -> tuple[bool, str]:
        lock = self.embedded.lock_file()
        if lock is None:
            return False, (
                "embedded Postgres is not running: it was shut down cleanly, not by the gate, so the gate "
                "does not restart it; restart the gate"
            )
        pid, status = lock
        if not self.embedded.running():
            detail = f"embedded Postgres (pid {pid}) died; the gate is restarting it"
            if self._attempts:
                wait = max(0.0, self._next_try - self._clock())
                detail += f" (attempt {self._attempts} failed: {self._last_error}; next in {wait:.0f} s)"
            return False, detail
        if status != "ready":
            return False, f"embedded Postgres (pid {pid}) is {status}"
        return True, f"embedded Postgres running (pid {pid})"

    # ---- the restart loop -------------------------------------------------------------------------

    def tick(self) -> None:
        """Look once; restart when the server died and an attempt is due. Blocks: run it in a thread."""
        lock = self.embedded.lock_file()
        if lock is None:
            if not self._reported_clean_stop:
                log.error(
                    "embedded Postgres in %s was shut down (not by the gate); not restarting it: "
                    "decisions spool until the gate is restarted",
                    self.embedded.pgdata,
                )
            self._reported_clean_stop = True
            return
        self._reported_clean_stop = False
        pid = lock[0]
        if self.embedded.running():
            return
        now = self._clock()
        if self._down_since is None:
            self._down_since, self._next_try = now, now
            log.error("embedded Postgres (pid %d) died; restarting it", pid)
        if now < self._next_try:
            return
        self._attempts += 1
        try:
            new_pid = self.embedded.restart()
        except EmbeddedPostgresError as exc:
            metrics.EMBEDDED_POSTGRES_RESTARTS.labels("failed").inc()
            delay = min(self.first_backoff * 2 ** (self._attempts - 1), self.max_backoff)
            self._next_try = self._clock() + delay
            self._last_error = str(exc).splitlines()[0]
            log.error(
                "embedded Postgres restart attempt %d failed; next in %.0f s: %s", self._attempts, delay, exc
            )
            return
        metrics.EMBEDDED_POSTGRES_RESTARTS.labels("ok").inc()
        log.info(
            "embedded Postgres restarted (pid %d), %.1f s after it died (%d attempt%s)",
            new_pid,
            self._clock() - self._down_since,
            self._attempts,
            "" if self._attempts == 1 else "s",
        )
        self._down_since, self._attempts, self._last_error = None, 0, ""

    async def watch(self, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds until cancelled (the gate's shutdown cancels it first); a
        surprise is logged and the next tick goes on (readiness still reads live state)."""

        async def step() -> None:
            await asyncio.to_thread(self.tick)

        await every(interval, step, what="embedded Postgres keeper", now=True)
