"""Issue 12 through the real gate on a real port: a JPEG that sniffs as video is judged as the JPEG,
and mutated image headers never get a 5xx or cost a hashing worker."""

from __future__ import annotations

import aiohttp

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from tests.integration.conftest import GateFactory
from tests.support import images
from tests.support.media import polyglot
from tests.support.mutations import random_bodies
from tests.support.upstream import RecordingUpstream

AUTH = {"Authorization": "Bearer not-checked-by-the-fake-upstream"}
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
Upstream = tuple[RecordingUpstream, str]


async def test_a_banked_jpeg_that_sniffs_as_video_is_refused(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    banned = images.jpeg("astronaut.png")
    pdq = hash_bytes(banned, HashOptions()).pdq[0].hex
    gate = await start_gate(banks={"blocklist": f"pdq,{pdq},banked"})
    async with aiohttp.ClientSession() as s:
        async with s.post(gate.url + UPLOAD, data=polyglot(banned, b"moov"), headers=AUTH) as r:
            assert r.status == 400
            assert (await r.json())["error"] == "BlobRejected"
    assert rec.uploads() == []


async def test_mutated_headers_never_get_a_5xx_or_kill_a_worker(start_gate: GateFactory) -> None:
    gate = await start_gate()
    await gate.deps.judge.hasher.warm_up()
    (pid,) = gate.deps.judge.hasher.worker_pids()
    async with aiohttp.ClientSession() as s:
        for body in random_bodies(40, seed=7):
            async with s.post(
                gate.url + UPLOAD, data=body, headers={**AUTH, "Content-Type": "image/png"}
            ) as r:
                assert r.status < 500, await r.text()
                answer = await r.json(content_type=None)
                if r.status != 200:  # the policy's refusal, as a well-formed XRPC error
                    assert set(answer) == {"error", "message"}
    assert gate.deps.judge.hasher.worker_pids() == [pid]
