"""``DecisionLog``: the ``DecisionSink`` that writes every decision to Postgres without delaying uploads.

``submit`` turns the record into its row's JSON text (``gate.store.rows``) and appends that to a bounded
in-memory queue. One background task takes whatever is queued (up to a batch) and inserts it with one
statement. The queue holds text, not records: under 1,000 decisions/s, records queued for a flush
interval lived long enough to be promoted by the garbage collector, and both their collections and the
conversion of a whole batch at once held the event loop in bursts that every upload arriving then
waited out; one row's conversion (~20 µs) as each decision comes costs no upload a burst. When Postgres
is unreachable, slow or missing its schema, the batch goes to the spool file instead, and the spool is
replayed, in order and idempotently, once Postgres answers again — also after a restart. Only when
neither Postgres nor the spool can take a batch does ``accepting()`` turn False (the policy's
``on_log_failure`` then decides); the batch stays in memory and is retried.

(Over 300 lines on purpose: one writer whose queue, spool and pool states must be read together.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from pathlib import Path

import asyncpg

from gate import metrics
from gate.record import DecisionRecord
from gate.settings import Settings
from gate.store.migrate import MigrationError
from gate.store.pool import DB_ERRORS, Pool, StoreUnavailable
from gate.store.rows import INSERT_SQL, batch_json, record_to_row, row_json
from gate.store.spool import Spool, spool_dir

log = logging.getLogger(__name__)

Line = str  # a decision as its row's JSON text (``row_json``): what the queue, the spool and inserts take
SLICE = 50  # spooled rows converted between two turns of the event loop on replay (~1 ms)
# Postgres refused the values themselves (SQLSTATE classes 22, 23): retrying cannot help.
_DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


class DecisionLog:
    def __init__(
        self,
        db: Pool,
        spool_dir: Path,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        command_timeout: float = 10.0,
        retry_interval: float = 1.0,
        flush_interval: float = 0.2,
        drain_timeout: float = 10.0,
        spool_max_bytes: int = 1 << 30,
    ) -> None:
        self.db = db
        self.spool = Spool(spool_dir, spool_max_bytes)
        self.queue_size, self.batch_size = queue_size, batch_size
        self._command_timeout = command_timeout
        self._retry_interval, self._drain_timeout = retry_interval, drain_timeout
        self._flush_interval = flush_interval
        self._buffer: collections.deque[Line] = collections.deque()
        self._wake = asyncio.Event()
        self._next_try = 0.0
        self._db_up: bool | None = None  # None until the first attempt
        self._held: list[Line] = []  # rows neither Postgres nor the spool would take; retried first
        self._inflight: list[Line] = []
        self._closing = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, db: Pool, spool: Path | None = None) -> DecisionLog:
        """``spool``: the outage spool's directory when not the gate's own (``upload-gate watch``)."""
        return cls(
            db,
            spool or spool_dir(settings.data_dir),
            queue_size=settings.decision_queue_size,
            batch_size=settings.decision_batch_size,
            command_timeout=settings.db_command_timeout,
            retry_interval=settings.decision_retry_interval,
            flush_interval=settings.decision_flush_interval,
            drain_timeout=settings.decision_drain_timeout,
            spool_max_bytes=settings.spool_max_bytes,
        )

    # ---- the sink --------------------------------------------------------------------------------

    def accepting(self) -> bool:
        return not self._closed and not self._held and len(self._buffer) < self.queue_size

    def submit(self, record: DecisionRecord) -> None:
        if self._closed or len(self._buffer) >= self.queue_size:
            metrics.DECISION_LOG_RECORDS.labels("dropped").inc()
            log.error("decision %s dropped: decision log queue full or closed", record.id)
            return
        try:
            line = row_json(record_to_row(record))
        except Exception:  # a malformed record (say, an id that is not 32 hex) must not stop the log
            metrics.DECISION_LOG_RECORDS.labels("dropped").inc()
            log.exception("decision %r cannot be stored; dropped", getattr(record, "id", None))
            return
        self._buffer.append(line)
        queued = len(self._buffer)
        metrics.DECISION_LOG_QUEUE.set(queued)
        # The writer waits for the first record (queue empty) or, lingering, for a full batch; waking it
        # for every record cost a timer and a task switch per decision for nothing.
        if queued == 1 or queued >= self.batch_size:
            self._wake.set()

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool (replaying what a previous run left) and start the writer. Postgres being
        down is not an error here: decisions are spooled until it answers."""
        await asyncio.to_thread(self.spool.open)
        await self._ensure_pool()
        self._task = asyncio.create_task(self._run(), name="decision-log-writer")
        self._publish()

    async def close(self) -> None:
        """Drain: write what is queued (to Postgres, else the spool) within the drain timeout."""
        if self._task is None or self._closed:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._drain_timeout)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._closed = True
        leftover = self._inflight + self._held + list(self._buffer)
        self._buffer.clear()
        self._held, self._inflight = [], []
        if leftover:  # duplicates of rows already inserted are harmless: replay skips known ids
            try:
                await asyncio.to_thread(self.spool.append_lines, leftover)
                metrics.DECISION_LOG_RECORDS.labels("spooled").inc(len(leftover))
            except OSError as exc:
                metrics.DECISION_LOG_RECORDS.labels("dropped").inc(len(leftover))
                log.error(
                    "shutdown: %d decisions lost, neither Postgres nor spool took them: %s",
                    len(leftover),
                    exc,
                )
        self.spool.close()
        self._publish()

    async def wait_idle(self, limit: float = 30.0) -> None:
        """Tests and benchmarks: until everything submitted so far is in Postgres or the spool."""
        deadline = time.monotonic() + limit
        while self._buffer or self._inflight or self._held:
            if time.monotonic() > deadline:
                raise TimeoutError("decision log did not become idle")
            await asyncio.sleep(0.01)

    # ---- the writer ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if not await self._step():
                    return
            except Exception:
                # A bug here must not silently end the writer: keep the rows, say so, try again.
                log.exception("decision log writer failed; retrying")
                self._held, self._inflight = self._inflight + self._held, []
                if self._closing:
                    return
                await self._wait(self._retry_interval)

    async def _step(self) -> bool:
        """One batch: persist it, replay a spool chunk if one is pending. False when drained and closing."""
        if not self._held and not self._buffer:
            if self._closing:
                return False
            await self._wait(self._retry_interval if self.spool.pending_records else None)
        if self._held:
            self._inflight, self._held = self._held, []
        else:
            if len(self._buffer) < self.batch_size and not self._closing:
                # Linger so a batch fills: a few commits a second instead of one per upload keeps
                # the writer's (and Postgres's) CPU away from the uploads on a small machine.
                await self._linger()
            self._inflight = self._take_batch()
        if self._inflight and not await self._persist(self._inflight):
            self._held = self._inflight
        self._inflight = []
        if self.spool.pending_records and not self._closing:
            await self._replay_chunk()
        self._publish()
        if self._held:
            if self._closing:
                return False  # close() makes the last attempt
            log.error("decision log: Postgres and spool both failing; %d decisions held", len(self._held))
            await self._wait(self._retry_interval)
        return True

    def _take_batch(self) -> list[Line]:
        return [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]

    async def _linger(self) -> None:
        deadline = time.monotonic() + self._flush_interval
        while len(self._buffer) < self.batch_size and not self._closing:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    async def _wait(self, seconds: float | None) -> None:
        self._wake.clear()
        if self._buffer or self._closing:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _persist(self, rows: list[Line]) -> bool:
        # While the spool holds older rows, new ones queue behind them so replay keeps the order.
        direct = self.spool.pending_records == 0
        if direct and await self._insert(rows, "postgres"):
            return True
        if await self._append_spool(rows):
            return True
        return not direct and await self._insert(rows, "postgres")

    async def _append_spool(self, rows: list[Line]) -> bool:
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.spool.append_lines, rows)
        except OSError as exc:
            metrics.DECISION_LOG_WRITE_FAILURES.labels("spool", "io").inc()
            log.error("decision spool %s failed: %s", self.spool.path, exc)
            return False
        metrics.DECISION_LOG_WRITE_SECONDS.labels("spool").observe(time.perf_counter() - started)
        metrics.DECISION_LOG_RECORDS.labels("spooled").inc(len(rows))
        return True

    async def _replay_chunk(self) -> None:
        if await self._ensure_pool() is None:
            return
        rows, bad, offset = await asyncio.to_thread(self.spool.read_chunk, self.batch_size)
        if bad:
            await asyncio.to_thread(self.spool.reject, bad, "unparseable spool line")
            metrics.DECISION_LOG_RECORDS.labels("rejected").inc(len(bad))
        lines: list[Line] = []
        for start in range(0, len(rows), SLICE):  # rows a spool from an older gate holds are filled in
            lines += map(row_json, rows[start : start + SLICE])
            await asyncio.sleep(0)
        if lines and not await self._insert(lines, "replay"):
            return
        await asyncio.to_thread(self.spool.commit, offset, len(rows) + len(bad))
        metrics.DECISION_LOG_RECORDS.labels("replayed").inc(len(rows))
        if not self.spool.pending_records:
            log.info("decision spool replayed into Postgres; spool empty")

    async def _insert(self, rows: list[Line], target: str) -> bool:
        """Insert ``rows``; False on an outage (the caller spools). Rows Postgres refuses as data are
        set aside one by one so a single bad row never blocks the rest."""
        pool = await self._ensure_pool()
        if pool is None:
            return False
        started = time.perf_counter()
        try:
            await pool.execute(INSERT_SQL, batch_json(rows), timeout=self._command_timeout)
        except _DATA_ERRORS:
            return await self._insert_each(pool, rows, target)
        except DB_ERRORS as exc:
            await self._db_failed(target, exc)
            return False
        metrics.DECISION_LOG_WRITE_SECONDS.labels(target).observe(time.perf_counter() - started)
        if target == "postgres":
            metrics.DECISION_LOG_RECORDS.labels("inserted").inc(len(rows))
        return True

    async def _insert_each(self, pool: asyncpg.Pool[asyncpg.Record], rows: list[Line], target: str) -> bool:
        for row in rows:
            try:
                await pool.execute(INSERT_SQL, batch_json([row]), timeout=self._command_timeout)
            except _DATA_ERRORS as exc:
                metrics.DECISION_LOG_WRITE_FAILURES.labels(target, "data").inc()
                metrics.DECISION_LOG_RECORDS.labels("rejected").inc()
                log.error(
                    "decision %s refused by Postgres (%s); kept in %s",
                    json.loads(row).get("id"),
                    exc,
                    self.spool.rejected_path,
                )
                await asyncio.to_thread(self.spool.reject, [row], str(exc))
            except DB_ERRORS as exc:
                await self._db_failed(target, exc)
                return False
        return True

    async def _ensure_pool(self) -> asyncpg.Pool[asyncpg.Record] | None:
        """The shared pool, unless Postgres failed less than a retry interval ago (spool meanwhile)."""
        if time.monotonic() < self._next_try:
            return None
        try:
            pool = await self.db.get()  # the schema a replica needs, applied under the advisory lock
        except StoreUnavailable as exc:
            await self._db_failed("postgres", exc.__cause__ or exc)
            return None
        if self._db_up is None:
            log.info("decision log: writing decisions to Postgres")
        elif self._db_up is False:  # good news after the ERROR that said it was failing
            log.info("decision log: Postgres reachable again; writing decisions")
        self._db_up = True
        return pool

    async def _db_failed(self, target: str, exc: BaseException) -> None:
        kind = "timeout" if isinstance(exc, TimeoutError) else "unreachable"
        metrics.DECISION_LOG_WRITE_FAILURES.labels(target, kind).inc()
        if self._db_up is not False:
            log.error("decision log: Postgres failing (%s: %s); spooling decisions", type(exc).__name__, exc)
        self._db_up = False
        self._next_try = time.monotonic() + self._retry_interval
        if not isinstance(exc, StoreUnavailable | MigrationError):
            # Connections to a restarted server are dead, and the database may have come back empty.
            await self.db.failed()

    def _publish(self) -> None:
        metrics.DECISION_LOG_QUEUE.set(len(self._buffer))
        metrics.DECISION_LOG_SPOOL_BYTES.set(self.spool.pending_bytes)
        metrics.DECISION_LOG_SPOOL_RECORDS.set(self.spool.pending_records)
        metrics.DECISION_LOG_ACCEPTING.set(1 if self.accepting() else 0)
