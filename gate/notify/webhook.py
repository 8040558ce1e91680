"""``Webhook``: signed POSTs of events to the operator's URL, off the upload path, retried, then dead.

``submit`` only enqueues (a full queue dead-letters the event: an upload never waits on a chat
server). One delivery task POSTs each event; a failed delivery is re-queued after a backoff that doubles
per attempt, up to ``attempts`` tries; then, or at once on a 4xx the receiver means (not 408/429), the
event is dead and counted in ``upload_gate_webhook_dead_letters_total``.

Receivers check ``X-Gate-Signature: t=<unix seconds>,sha256=<hex>`` where the hex is
HMAC-SHA256(secret, "<t>." + body). The timestamp lets them refuse replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from yarl import URL

from gate import metrics
from gate.notify.event import Event
from gate.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Gate-Signature"
MAX_BACKOFF = 60.0


class Notifier(Protocol):
    def submit(self, event: Event) -> None: ...


class NullNotifier:
    """No webhook configured: events are dropped silently (nothing to count as lost)."""

    def submit(self, event: Event) -> None:
        return None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},sha256={mac}"


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does (and the tests): recompute and compare in constant time."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not fields.get("t", "").isdigit():
        return False
    return hmac.compare_digest(sign(secret, int(fields["t"]), body), header)


@dataclass
class _Pending:
    event: Event
    body: bytes
    attempt: int = 0


class Webhook:
    def __init__(
        self,
        url: URL,
        secret: str,
        *,
        attempts: int = 5,
        backoff: float = 1.0,
        timeout: float = 5.0,
        queue_size: int = 1000,
    ) -> None:
        self.url, self._secret = url, secret
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(queue_size)
        self._retrying: set[asyncio.TimerHandle] = set()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Webhook | None:
        if settings.webhook_url is None or not settings.webhook_secret:
            return None
        return cls(
            settings.webhook_url,
            settings.webhook_secret,
            attempts=settings.webhook_attempts,
            backoff=settings.webhook_backoff,
            timeout=settings.webhook_timeout,
            queue_size=settings.webhook_queue_size,
        )

    def submit(self, event: Event) -> None:
        body = json.dumps(event.to_json(), sort_keys=True).encode()
        self._enqueue(_Pending(event, body))

    def _enqueue(self, item: _Pending) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._dead(item, "queue_full")
        self._publish()

    def _dead(self, item: _Pending, reason: str) -> None:
        metrics.WEBHOOK_DEAD_LETTERS.labels(reason).inc()
        log.error("webhook event %s (%s) dead: %s", item.event.id, item.event.type, reason)

    def _publish(self) -> None:
        metrics.WEBHOOK_QUEUE.set(self._queue.qsize() + len(self._retrying))

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._task = asyncio.create_task(self._run(), name="webhook-sender")

    async def close(self, drain: float = 2.0) -> None:
        """Give queued events ``drain`` seconds, then count whatever is left as dead."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for handle in self._retrying:
            handle.cancel()
            metrics.WEBHOOK_DEAD_LETTERS.labels("shutdown").inc()
        self._retrying.clear()
        while not self._queue.empty():
            self._dead(self._queue.get_nowait(), "shutdown")
        if self._session is not None:
            await self._session.close()
        self._publish()

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._deliver(item)
            except Exception:  # a bug here must not stop later deliveries
                log.exception("webhook delivery of %s crashed", item.event.id)
                self._dead(item, "exhausted")
            finally:
                self._queue.task_done()
                self._publish()

    async def _deliver(self, item: _Pending) -> None:
        assert self._session is not None
        item.attempt += 1
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, int(time.time()), item.body),
            "X-Gate-Event": item.event.type,
            "X-Gate-Delivery": item.event.id,
        }
        status: int | None = None
        try:
            async with self._session.post(self.url, data=item.body, headers=headers) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("webhook %s attempt %d: %s", item.event.id, item.attempt, type(exc).__name__)
        if status is not None and 200 <= status < 300:
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
            return
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
            self._dead(item, "refused")
            return
        if item.attempt >= self.attempts:
            metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
            self._dead(item, "exhausted")
            return
        metrics.WEBHOOK_DELIVERIES.labels("retried").inc()
        delay = min(self.backoff * 2 ** (item.attempt - 1), MAX_BACKOFF)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def again() -> None:
            self._retrying.discard(handle)
            self._enqueue(item)

        handle = loop.call_later(delay, again)
        self._retrying.add(handle)
