"""``NotifyingSink``: a DecisionSink that passes every record on and announces holds and rejections.

Wrapping the sink keeps notifications out of the pipeline: the record is built after the client's
answer is decided, and ``Notifier.submit`` only enqueues, so no upload waits on a webhook.
"""

from __future__ import annotations

import logging

from gate.notify.event import decision_event
from gate.notify.webhook import Notifier
from gate.record import DecisionRecord, DecisionSink

log = logging.getLogger(__name__)


class NotifyingSink:
    def __init__(self, inner: DecisionSink, notifier: Notifier) -> None:
        self.inner = inner
        self.notifier = notifier

    def accepting(self) -> bool:
        return self.inner.accepting()

    def submit(self, record: DecisionRecord) -> None:
        self.inner.submit(record)
        announce(self.notifier, record)


def announce(notifier: Notifier, record: DecisionRecord) -> None:
    """The record's webhook event (holds and rejections), if it has one, queued for ``notifier``."""
    event = decision_event(record)
    if event is None:
        return
    try:
        notifier.submit(event)
    except Exception:  # a notification problem never touches the decision or the upload
        log.exception("notification for decision %s failed", record.id)
