"""Webhooks against a real receiver on a real port: signed, retried with backoff, dead-lettered, no bytes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable

import aiohttp
from prometheus_client import REGISTRY
from yarl import URL

from gate.notify.event import Event
from gate.notify.webhook import SIGNATURE_HEADER, Webhook, verify
from tests.integration.conftest import GateFactory
from tests.support import images
from tests.support.receiver import receiver
from tests.support.upstream import RecordingUpstream

SECRET = "webhook-test-secret"


def dead(reason: str) -> float:
    return REGISTRY.get_sample_value("upload_gate_webhook_dead_letters_total", {"reason": reason}) or 0.0


async def wait_for(cond: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_delivery_is_signed_and_retried_until_it_succeeds() -> None:
    async with receiver() as rec:
        rec.statuses = [503, 500, 200]
        hook = Webhook(URL(rec.url) / "hook", SECRET, attempts=5, backoff=0.01)
        await hook.start()
        hook.submit(Event("upload.quarantined", {"decision_id": "d1", "sha256": "ab" * 32}))
        await wait_for(lambda: len(rec.got) == 3)
        await hook.close()
    last = rec.got[-1]
    assert verify(SECRET, last.headers[SIGNATURE_HEADER], last.body)
    assert not verify("wrong-secret", last.headers[SIGNATURE_HEADER], last.body)
    assert not verify(SECRET, last.headers[SIGNATURE_HEADER], last.body + b" ")
    body = json.loads(last.body)
    assert body["type"] == "upload.quarantined" and body["data"]["decision_id"] == "d1"
    assert len({r.headers["X-Gate-Delivery"] for r in rec.got}) == 1  # one event, three attempts


async def test_exhausted_retries_and_refusals_are_dead_letters() -> None:
    async with receiver() as rec:
        rec.statuses = [500]
        before = dead("exhausted")
        hook = Webhook(URL(rec.url), SECRET, attempts=3, backoff=0.01)
        await hook.start()
        hook.submit(Event("upload.rejected", {"decision_id": "d2"}))
        await wait_for(lambda: dead("exhausted") == before + 1)
        assert len(rec.got) == 3
        rec.statuses = [410]
        before_refused = dead("refused")
        hook.submit(Event("upload.rejected", {"decision_id": "d3"}))
        await wait_for(lambda: dead("refused") == before_refused + 1)
        assert len(rec.got) == 4  # a 4xx is not retried
        await hook.close()


async def test_a_slow_receiver_never_slows_submit() -> None:
    async def stall(request: aiohttp.web.Request, body: bytes) -> aiohttp.web.Response:
        await asyncio.sleep(10)
        return aiohttp.web.Response()

    async with receiver() as rec:
        rec.routes["/"] = stall
        hook = Webhook(URL(rec.url), SECRET, attempts=1, timeout=0.2, queue_size=2)
        await hook.start()
        before = dead("queue_full")
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(10):
            hook.submit(Event("upload.rejected", {"decision_id": f"d{i}"}))
        assert loop.time() - started < 0.5
        assert dead("queue_full") >= before + 7
        await hook.close(drain=0.1)


async def test_gate_announces_a_rejected_upload_with_hashes_and_no_bytes(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str]
) -> None:
    body = images.jpeg()
    sha = hashlib.sha256(body).hexdigest()
    async with receiver() as rec:
        gate = await start_gate(
            banks={"blocklist": f"sha256,{sha},test"},
            GATE_WEBHOOK_URL=rec.url + "/hook",
            GATE_WEBHOOK_SECRET=SECRET,
        )
        async with aiohttp.ClientSession() as s:
            async with s.post(
                gate.url + "/xrpc/com.atproto.repo.uploadBlob",
                data=body,
                headers={"Authorization": "Bearer x.y.z", "Content-Type": "image/jpeg"},
            ) as r:
                assert r.status == 400
        await wait_for(lambda: len(rec.got) == 1)
    [got] = rec.got
    assert verify(SECRET, got.headers[SIGNATURE_HEADER], got.body)
    event = json.loads(got.body)
    assert event["type"] == "upload.rejected"
    assert event["data"]["sha256"] == sha and event["data"]["rule"] == "block-exact"
    assert event["data"]["matches"][0]["bank"] == "blocklist"
    # Never the bytes, in any encoding a receiver could reassemble them from.
    assert body not in got.body
    assert base64.b64encode(body[:64]) not in got.body
    assert len(got.body) < 4096
    assert upstream[0].uploads() == []
