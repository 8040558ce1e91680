"""``Watcher``: the repository firehose judged blob by blob — the gate's second audience (AppView and relay
operators, and a PDS host's safety net after posting).

    firehose ─▶ read (RepoStream) ─▶ decode (events) ─▶ bounded queue ─▶ workers ─┬─ seen before? reuse
                     ▲ paused while the queue is full                             ├─ resolve DID → PDS
                     └─ from the durable cursor                                   ├─ getBlob (bounded)
                                                                                  ├─ judge (source=firehose)
                                                                                  ├─ evidence, takedown (own PDS),
                                                                                  │  decision row
                                                                                  └─ labels, report (publish)

Backpressure: the reader waits while ``GATE_FIREHOSE_QUEUE_SIZE`` commits wait for a worker, so a slow
judge slows the reading, never memory. The lag (how old the newest commit read is) is a metric and, with
the counts, the queue and the cursor, in a progress line logged every minute and at exit; past the
policy's ``[firehose] max_lag_seconds`` the policy chooses: ``pause`` keeps judging everything, late;
``skip`` lets commits past the limit through unjudged, each skipped blob counted and logged with its
record, until the watcher has caught up.

Memory: each blob is held under the process's GATE_MEMORY_BUDGET_BYTES, as a scan's: a worker that knows
its blob's size (the PDS's Content-Length, before a byte of the body is read) waits, holding nothing,
until the blob's whole peak fits (gate.proxy.budget.peak: the body, its hashing worker's copy or its
evidence being written), and holds it until the blob is recorded. So the hasher reserves nothing of its
own here (``open_deps(admitted=True)``). Only a blob whose peak is over the whole budget fails, as a
``too_large`` fetch: no wait could make it fit.

Nothing one event does stops the stream: a frame that does not decode, a record of a type never seen, a
DID that does not resolve, a PDS that refuses ``getBlob`` — each is counted (and, for a blob, recorded as
a decision row with its error) and the next event is read.

(Over 300 lines on purpose: the reader, the queue and the workers share the cursor and backpressure
state, which must be read together.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from gate import metrics
from gate.errors import Refusal
from gate.firehose.events import BlobRef, CommitEvent, Malformed, OtherEvent, StreamError, decode
from gate.firehose.fetch import BlobFetcher, FetchFailed
from gate.firehose.identity import Identities, Unresolvable
from gate.firehose.progress import Progress, Seen, Tally, WatchState
from gate.firehose.publish import Publisher, until_stored
from gate.firehose.stream import RepoStream
from gate.firehose.takedown import OwnTakedowns
from gate.judge import Context, Judge
from gate.policy.model import Policy
from gate.proxy.budget import Admission, MemoryBudget, peak
from gate.record import DecisionRecord, DecisionSink, new_decision_id
from gate.store.pool import StoreUnavailable
from gate.store.retention import Retention
from gate.store.vault import EvidenceCapped, Vault
from gate.types import DecisionSource, Uploader, Verdict

log = logging.getLogger("gate.firehose")

UPLOADER_METHOD = "firehose"  # decisions.did_method: the author named by the commit's repo
SAVE_INTERVAL = 1.0  # seconds between durable cursor writes
PROGRESS_INTERVAL = 60.0  # seconds between progress lines (and one when the watcher stops)
ACTING = (Verdict.QUARANTINE, Verdict.REJECT)


class FirehoseRefused(Refusal):
    """The firehose itself refused us (FutureCursor…): watching cannot go on without the operator."""


@dataclass
class WatchOptions:
    workers: int = 8
    queue_size: int = 256


class Watcher:
    def __init__(
        self,
        service: str,
        *,
        judge: Judge,
        sink: DecisionSink,
        vault: Vault | None,
        state: WatchState,
        identities: Identities,
        fetcher: BlobFetcher,
        publisher: Publisher,
        options: WatchOptions,
        budget: MemoryBudget,
        takedowns: OwnTakedowns | None = None,
    ) -> None:
        self.service = service
        self.budget = budget  # GATE_MEMORY_BUDGET_BYTES, this process's: every blob's peak is admitted
        self.judge = judge
        self.sink = sink
        self.vault = vault
        self.state = state
        self.identities = identities
        self.fetcher = fetcher
        self.publisher = publisher
        self.options = options
        self.takedowns = takedowns
        self.progress = Progress(None)
        self.tally = Tally(service)
        self.queue: asyncio.Queue[CommitEvent] = asyncio.Queue(options.queue_size)
        self._saved: int | None = None
        self._in_flight: dict[str, asyncio.Future[Seen | None]] = {}
        self._refused: FirehoseRefused | None = None
        self._stream: RepoStream | None = None

    # ---- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Watch until cancelled (or the firehose refuses us: ``FirehoseRefused``)."""
        self.progress = Progress(await self.state.cursor())
        self._saved = self.progress.last_read
        log.info("watching %s from cursor %s", self.service, self.progress.last_read)
        metrics.FIREHOSE_LAG_LIMIT.set(self.judge.policy.current.firehose.max_lag_seconds)
        # Reconnections inside this process resume after the last event *read* (the rest are in flight
        # here); a new process resumes from the durable watermark.
        self._stream = RepoStream(self.service, lambda: self.progress.last_read)
        workers = [asyncio.create_task(self._work()) for _ in range(self.options.workers)]
        saver = asyncio.create_task(self._save_periodically())
        try:
            await self._stream.run(self._on_message)
            if self._refused is not None:
                raise self._refused
        finally:
            await self._stream.stop()
            await self._drain(workers)
            await self.publisher.drain()
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
            with contextlib.suppress(StoreUnavailable):
                await self.save_cursor()
            self._log_progress()

    async def _drain(self, workers: list[asyncio.Task[None]]) -> None:
        """On the way out: let the workers finish what is queued (briefly), then stop them; what is left
        is in flight and is read again from the saved watermark next time."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), 5.0)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _save_periodically(self) -> None:
        since = 0.0
        while True:
            await asyncio.sleep(SAVE_INTERVAL)
            since += SAVE_INTERVAL
            if since >= PROGRESS_INTERVAL:
                since = 0.0
                self._log_progress()
            try:
                await self.save_cursor()
            except StoreUnavailable as exc:
                log.warning("firehose cursor not saved (kept in memory, retried): %s", exc)

    def _log_progress(self) -> None:
        log.info(self.tally.line(self.progress, self.queue.qsize(), self.options.queue_size, self._saved))

    async def save_cursor(self) -> None:
        mark = self.progress.watermark
        if mark is not None and mark != self._saved:
            await self.state.save_cursor(mark)
            self._saved = mark
            metrics.FIREHOSE_CURSOR.set(mark)

    # ---- reading -----------------------------------------------------------------------------------

    async def _on_message(self, raw: bytes | str) -> None:
        event = decode(raw)
        if isinstance(event, Malformed):
            metrics.FIREHOSE_EVENTS.labels("malformed").inc()
            log.warning("firehose frame not decoded (%s) at seq %s: skipped", event.why, event.seq)
            if event.seq is not None and self.progress.begin(event.seq):
                self.progress.finish(event.seq)
            return
        if isinstance(event, StreamError):
            metrics.FIREHOSE_EVENTS.labels("error").inc()
            log.error("the firehose sent an error: %s %s", event.error, event.message or "")
            if event.error == "FutureCursor":
                self._refused = FirehoseRefused(
                    f"{self.service} says cursor {self.progress.last_read} is in its future (was it reset?); "
                    "to start from its present: upload-gate watch --reset-cursor"
                )
                if self._stream is not None:
                    await self._stream.stop()
            return  # the server closes the connection; the stream reconnects with back-off
        if event.seq is None:
            return
        if not self.progress.begin(event.seq):
            metrics.FIREHOSE_EVENTS.labels("repeat").inc()
            return
        if isinstance(event, OtherEvent):
            metrics.FIREHOSE_EVENTS.labels("other").inc()
            self.progress.finish(event.seq)
            return
        metrics.FIREHOSE_EVENTS.labels("commit").inc()
        self.tally.commits += 1
        for family, count in event.records.items():
            metrics.FIREHOSE_RECORDS.labels(family).inc(count)
        if event.truncated:
            log.warning(
                "commit %d of %s references more blobs than are taken from one commit", event.seq, event.repo
            )
        # Every commit moves the lag, not only those with blobs: on a quiet stretch of the firehose the
        # gauge would otherwise keep the last busy moment's figure.
        lag = (datetime.now(UTC) - event.time).total_seconds() if event.time else 0.0
        self.tally.lag = max(lag, 0.0)
        metrics.FIREHOSE_LAG.set(self.tally.lag)
        if not event.blobs:
            self.progress.finish(event.seq)
            return
        policy = self.judge.policy.current.firehose
        metrics.FIREHOSE_LAG_LIMIT.set(policy.max_lag_seconds)  # the policy may have been reloaded
        if lag > policy.max_lag_seconds and policy.on_lag == "skip":
            for ref in event.blobs:
                self._count("skipped")
                log.warning(
                    "blob %s of %s skipped: the watcher is %.0f s behind (on_lag = skip)",
                    ref.cid,
                    ref.uri,
                    lag,
                )
            self.progress.finish(event.seq)
            return
        await self.queue.put(event)  # waits while the queue is full: the firehose is read no faster
        metrics.FIREHOSE_QUEUE.set(self.queue.qsize())

    # ---- judging -----------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            event = await self.queue.get()
            metrics.FIREHOSE_QUEUE.set(self.queue.qsize())
            try:
                await asyncio.gather(*(self._blob(event, ref) for ref in event.blobs))
            except Exception:
                log.exception("commit %d of %s: a blob could not be handled", event.seq, event.repo)
            finally:
                self.progress.finish(event.seq)
                self.queue.task_done()

    async def _blob(self, event: CommitEvent, ref: BlobRef) -> None:
        seen = await self._judged(event, ref)
        if seen is None or seen.verdict is None or seen.rule is None:
            return
        if self.takedowns is not None:  # the same blob in another repo of our own PDS is taken down too
            await self.takedowns.seen_again(
                self.judge.policy.current, event.repo, ref.cid, str(seen.decision_id), seen.verdict
            )
        await self.publisher.publish(event.repo, ref, seen.rule, seen.decision_id)

    async def _judged(self, event: CommitEvent, ref: BlobRef) -> Seen | None:
        """The judgement of ``ref``'s bytes: an earlier one (not fetched again), or a new one. None when
        it could not be judged (recorded and counted)."""
        pending = self._in_flight.get(ref.cid)
        if pending is not None:  # the same blob in another record right now: one fetch for both
            self._count("seen")
            return await asyncio.shield(pending)
        # In flight from here, before the first await: two workers given the same CID at once (a re-post
        # in the next commit) must not both miss the other and both fetch and record it.
        future: asyncio.Future[Seen | None] = asyncio.get_running_loop().create_future()
        self._in_flight[ref.cid] = future
        try:
            earlier = await until_stored(lambda: self.state.seen(ref.cid))
            if earlier is not None:
                self._count("seen")
                future.set_result(earlier)
                return earlier
            result = await self._judge(event, ref)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._in_flight[ref.cid]

    async def _judge(self, event: CommitEvent, ref: BlobRef) -> Seen | None:
        held = Admission(self.budget)
        try:
            return await self._judge_held(event, ref, held)
        finally:
            held.release()

    async def _judge_held(self, event: CommitEvent, ref: BlobRef, held: Admission) -> Seen | None:
        uploader = Uploader(event.repo, UPLOADER_METHOD, "firehose", event.repo)
        context = Context(source=DecisionSource.FIREHOSE)
        try:
            pds = await self.identities.pds_of(event.repo)
            body = await self.fetcher.fetch(
                pds, event.repo, ref.cid, held.blob(lambda why: FetchFailed("too_large", why))
            )
        except (Unresolvable, FetchFailed) as exc:
            stage = "identity" if isinstance(exc, Unresolvable) else "fetch"
            self._failed(ref, uploader, stage, exc.kind, str(exc))
            return None
        held.shrink_to(peak(len(body)))
        context.timer.lap("fetch")
        judgement = await self.judge.judge(body, context)
        if judgement.hashes.cid != ref.cid:
            self._failed(ref, uploader, "judge", "cid_mismatch", f"the PDS sent {judgement.hashes.cid}")
            return None
        decision = judgement.decision
        record = DecisionRecord(
            id=new_decision_id(),
            time=DecisionRecord.now(),
            source=context.source,
            client_ip=None,
            uploader=uploader,
            declared_type=ref.mime_type,
            hashes=judgement.hashes,
            decision=decision,
            verdict=decision.verdict,
            timings_ms=dict(context.timer.stages),
            cached=judgement.cached,
            record_uri=ref.uri,
        )
        await self._keep_evidence(record, body, judgement.policy)
        if self.takedowns is not None:
            actions = await self.takedowns.judged(judgement.policy, record, event.repo, pds)
            record = replace(record, actions=actions) if actions else record
        while not self.sink.accepting():  # noqa: ASYNC110 - the decision log is full or down: wait, never drop
            await asyncio.sleep(0.5)
        self.sink.submit(record)
        self._count("judged")
        metrics.DECISIONS.labels(decision.verdict.value, decision.reason).inc()
        rule = decision.rule if decision.verdict in ACTING and decision.matches else None
        await until_stored(
            lambda: self.state.mark_seen(ref.cid, record.id, decision.verdict.value, rule, ref.uri)
        )
        return Seen(uuid.UUID(hex=record.id), decision.verdict.value, rule)

    def _count(self, outcome: str) -> None:
        metrics.FIREHOSE_BLOBS.labels(outcome).inc()
        self.tally.blob(outcome)

    def _failed(self, ref: BlobRef, uploader: Uploader, stage: str, kind: str, detail: str) -> None:
        self._count("failed")
        metrics.FIREHOSE_FAILURES.labels(stage, kind).inc()
        log.warning("blob %s of %s not judged: %s %s (%s)", ref.cid, ref.uri, stage, kind, detail)
        self.sink.submit(
            DecisionRecord(
                id=new_decision_id(),
                time=DecisionRecord.now(),
                source=DecisionSource.FIREHOSE,
                client_ip=None,
                uploader=uploader,
                declared_type=ref.mime_type,
                hashes=None,
                decision=None,
                verdict=None,
                error=f"{stage}: {kind}: {ref.cid}: {detail}"[:500],
                record_uri=ref.uri,
            )
        )

    async def _keep_evidence(self, record: DecisionRecord, body: bytes, policy: Policy) -> None:
        verdict = record.verdict
        if verdict not in ACTING or (verdict is Verdict.REJECT and not policy.evidence.keep_rejected):
            return
        if self.vault is None:
            log.error("decision %s: no evidence store; the item is not kept", record.id)
            return
        try:
            await until_stored(
                lambda: self.vault.keep(  # type: ignore[union-attr]
                    record,
                    body,
                    Retention(policy.evidence.hold_days),
                    hourly_cap=policy.evidence.max_held_per_did_per_hour,
                )
            )
        except EvidenceCapped:
            log.warning("evidence for decision %s not kept: the author's hourly cap is reached", record.id)
            metrics.EVIDENCE_STORED.labels(verdict.value, "capped").inc()
        else:
            metrics.EVIDENCE_STORED.labels(verdict.value, "stored").inc()
