"""HMA through the real gate on a real port: the fake HMA and the local banks are both asked, in
parallel, their matches merged before ``evaluate``; HMA failures are decided by ``on_matcher_error``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.matching.hma import HmaMatcher
from gate.policy.load import PolicyError
from tests.fakes.hma import FakeHma
from tests.fakes.hma_support import OTHER_PDQ, flip
from tests.integration.conftest import GateFactory
from tests.support import images
from tests.support.policies import HMA_CLOSE, head
from tests.support.upstream import RecordingUpstream

AUTH = {"Authorization": "Bearer not-checked-by-the-fake-upstream", "Content-Type": "image/jpeg"}
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
Upstream = tuple[RecordingUpstream, str]

LOCAL_EXACT = """
[[rules]]
name = "local-exact"
source = "local"
banks = ["blocklist"]
signal_types = ["sha256"]
action = "reject"
"""


def policy(on_error: str = "reject", hma_banks: str = '["HMA_BLOCK"]') -> str:
    return head(on_matcher_error=on_error, hma_banks=hma_banks) + LOCAL_EXACT + HMA_CLOSE


def pdq_of(data: bytes) -> str:
    return hash_bytes(data, HashOptions()).pdq[0].hex


@pytest.fixture
async def hma() -> AsyncIterator[FakeHma]:
    async with FakeHma() as fake:
        fake.add_bank("HMA_BLOCK")
        fake.add_bank("OTHER")
        fake.add_signal("HMA_BLOCK", "pdq", pdq_of(images.jpeg("astronaut.png")))
        fake.add_signal("OTHER", "pdq", OTHER_PDQ)  # a second hash: HMA's one-hash-index bug stays away
        yield fake


async def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.post(url + UPLOAD, data=body, headers=AUTH) as r:
        return r.status, await r.json(content_type=None)


async def get_text(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        return r.status, await r.text()


def decisions(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:  # the decision log's JSON
    lines = [r.getMessage() for r in caplog.records if r.name == "gate.decisions"]
    return [json.loads(line.removeprefix("decision ")) for line in lines]


def hma_env(hma: FakeHma, **extra: str) -> dict[str, str]:
    return {"GATE_HMA_URL": hma.url, "GATE_HMA_STATUS_INTERVAL": "0.1", "GATE_HMA_CACHE_SIZE": "0", **extra}


async def test_an_hma_match_within_the_rule_is_rejected_and_never_reaches_the_pds(
    start_gate: GateFactory, upstream: Upstream, hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gate.decisions")
    gate = await start_gate(policy=policy(), **hma_env(hma))
    body = images.jpeg("astronaut.png")
    status, answer = await post(gate.url, body)
    assert (status, answer["error"]) == (400, "BlobRejected")
    assert upstream[0].uploads() == []
    [lookup] = hma.lookups
    assert lookup["seed"] == hashlib.sha256(body).hexdigest() and lookup["banks"] == "HMA_BLOCK"
    [record] = decisions(caplog)
    assert record["rule"] == "hma-close"
    assert [(m["source"], m["bank"]) for m in record["matches"]] == [("hma", "HMA_BLOCK")]


async def test_local_banks_and_hma_are_both_asked_and_merged(
    start_gate: GateFactory, upstream: Upstream, hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gate.decisions")
    body = images.jpeg("astronaut.png")
    local_row = f"sha256,{hashlib.sha256(body).hexdigest()},known bad"
    gate = await start_gate(policy=policy(), banks={"blocklist": local_row}, **hma_env(hma))
    status, _ = await post(gate.url, body)
    assert status == 400
    [record] = decisions(caplog)
    sources = sorted(m["source"] for m in record["matches"])
    assert sources == ["hma", "local"]


async def test_a_near_copy_beyond_the_rule_is_forwarded_with_the_match_recorded(
    start_gate: GateFactory, upstream: Upstream, hma: FakeHma, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gate.decisions")
    clean = images.jpeg("coffee.png")
    hma.add_signal(
        "HMA_BLOCK", "pdq", flip(pdq_of(clean), 20)
    )  # 20 bits: HMA matches, the rule (10) does not
    gate = await start_gate(policy=policy(), **hma_env(hma))
    status, _ = await post(gate.url, clean)
    assert status == 200
    assert [u.body for u in upstream[0].uploads()] == [clean]
    [record] = decisions(caplog)
    assert (record["verdict"], record["rule"]) == ("forward", "no_match")
    assert [(m["bank"], m["distance"]) for m in record["matches"]] == [("HMA_BLOCK", 20)]


@pytest.mark.parametrize(("on_error", "status"), [("reject", 400), ("quarantine", 400), ("forward", 200)])
async def test_a_failing_hma_is_decided_by_on_matcher_error(
    start_gate: GateFactory, upstream: Upstream, hma: FakeHma, on_error: str, status: int
) -> None:
    gate = await start_gate(policy=policy(on_error), **hma_env(hma, GATE_HMA_RETRIES="0"))
    hma.fail = "http_500"
    got, answer = await post(gate.url, images.jpeg("coffee.png"))
    assert got == status
    assert len(upstream[0].uploads()) == (1 if on_error == "forward" else 0)
    if on_error != "forward":
        assert answer["error"] == ("BlobRejected" if on_error == "reject" else "BlobHeld")
    _, metrics = await get_text(gate.admin_url + "/metrics")
    assert 'upload_gate_hma_failures_total{kind="http_5xx"}' in metrics


async def test_readiness_follows_hma_status(start_gate: GateFactory, hma: FakeHma) -> None:
    gate = await start_gate(policy=policy(), **hma_env(hma))
    status, body = await get_text(gate.admin_url + "/readyz")
    assert status == 200 and json.loads(body)["checks"]["hma"] == {"ready": True, "detail": "I-AM-ALIVE"}
    hma.stale = True
    [hma_matcher] = [m for m in gate.deps.judge.matchers if isinstance(m, HmaMatcher)]
    await hma_matcher.refresh_status()
    status, body = await get_text(gate.admin_url + "/readyz")
    assert status == 503 and json.loads(body)["checks"]["hma"] == {
        "ready": False,
        "detail": "503 INDEX-STALE",
    }


async def test_a_policy_naming_a_bank_hma_lacks_stops_the_gate(start_gate: GateFactory, hma: FakeHma) -> None:
    with pytest.raises(PolicyError, match="'NOT_IN_HMA', which HMA does not have"):
        await start_gate(policy=policy(hma_banks='["HMA_BLOCK", "NOT_IN_HMA"]'), **hma_env(hma))


async def test_a_video_is_looked_up_by_its_md5_and_rejected_on_an_exact_match(
    start_gate: GateFactory, upstream: Upstream, hma: FakeHma
) -> None:
    video = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 4
    hma.add_signal("HMA_BLOCK", "video_md5", hashlib.md5(video).hexdigest())
    video_rule = (
        '\n[[rules]]\nname = "hma-video"\nsource = "hma"\nsignal_types = ["video_md5"]\naction = "reject"\n'
    )
    gate = await start_gate(policy=policy() + video_rule, **hma_env(hma))
    status, answer = await post(gate.url, video)
    assert (status, answer["error"]) == (400, "BlobRejected")
    assert upstream[0].uploads() == []
    assert [(q["signal_type"], q["signal"]) for q in hma.lookups] == [
        ("video_md5", hashlib.md5(video).hexdigest())
    ]
