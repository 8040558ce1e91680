"""``Publisher``: what a match seen on the firehose publishes, as the policy's ``[[firehose.labels]]``
say for its rule — labels on the record (and the author's account) in the labels log, which ``serve``
signs and serves, and optionally a report to a moderation service.

Labels are written before the commit counts as handled (a Postgres outage pauses the watcher, see
``until_stored``); a report is sent beside the stream — at most ``MAX_PENDING`` at once, past that
counted as failed — so a slow moderation service never slows the judging.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gate import metrics
from gate.firehose.events import BlobRef
from gate.firehose.report import Reporter
from gate.labels.store import LabelStore
from gate.policy.reload import PolicyHolder
from gate.store.pool import StoreUnavailable

log = logging.getLogger("gate.firehose")
T = TypeVar("T")
MAX_PENDING = 64  # reports in flight at once
DRAIN_SECONDS = 10.0  # how long a stopping watcher waits for the reports in flight


async def until_stored(step: Callable[[], Awaitable[T]]) -> T:
    """Postgres steps are retried until they succeed: an outage pauses the watcher (the queue fills and
    reading stops), it never skips an event."""
    delay = 0.5
    while True:
        try:
            return await step()
        except StoreUnavailable as exc:
            log.warning("firehose: Postgres unavailable, retrying in %.1f s: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


class Publisher:
    def __init__(
        self,
        policy: PolicyHolder,
        labels: LabelStore | None,
        labeler_did: str | None,
        reporter: Reporter | None = None,
    ) -> None:
        self.policy = policy
        self.labels = labels
        self.labeler_did = labeler_did  # labels' src; None: matches are not labelled
        self.reporter = reporter
        self._pending: set[asyncio.Task[bool]] = set()

    async def publish(self, author: str, ref: BlobRef, rule: str, decision_id: uuid.UUID) -> None:
        if self.labels is None or self.labeler_did is None:
            return
        wanted = self.policy.current.firehose.labels_for(rule)
        if wanted is None:
            return
        store, src = self.labels, self.labeler_did
        await until_stored(lambda: store.apply(src, ref.uri, wanted.values, decision_id))
        if wanted.account:
            await until_stored(lambda: store.apply(src, author, wanted.values, decision_id))
        if wanted.report and self.reporter is not None:
            self._report(ref, rule, decision_id)

    def _report(self, ref: BlobRef, rule: str, decision_id: uuid.UUID) -> None:
        assert self.reporter is not None
        if len(self._pending) >= MAX_PENDING:
            metrics.FIREHOSE_REPORTS.labels("failed").inc()
            log.warning("report of %s not sent: %d reports already in flight", ref.uri, MAX_PENDING)
            return
        task = asyncio.create_task(self.reporter.report(ref.uri, ref.record_cid, rule, str(decision_id)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """On the way out: let the reports in flight finish (briefly; each has its own deadline)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=DRAIN_SECONDS)
