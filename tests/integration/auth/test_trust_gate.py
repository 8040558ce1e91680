"""Who learns a verdict, through the real gate on a real port in front of a stand-in PDS that checks
credentials as the PDS does (before the body): refusals relayed and nothing kept, the per-uploader
evidence cap, and an offline check that disagrees with the PDS switching itself off."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import aiohttp
import asyncpg

from tests.integration.conftest import POLICY, GateFactory
from tests.support import images
from tests.support.tokens import ALICE, ALICE_BEARER, hs256
from tests.support.upstream import INVALID_TOKEN, RecordingUpstream

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
Upstream = tuple[RecordingUpstream, str]
HOLD_EXACT = (
    POLICY
    + '\n[[rules]]\nname = "hold-exact"\nsource = "local"\nbanks = ["review"]\nsignal_types = ["sha256"]\n'
    + 'action = "quarantine"\n'
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(url: str, body: bytes, authorization: str) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Authorization": authorization, "Content-Type": "image/png"}
    async with aiohttp.ClientSession() as s, s.post(url + UPLOAD, data=body, headers=headers) as r:
        kept = {k: v for k, v in r.headers.items() if k.lower() != "date"}
        return r.status, await r.read(), kept


async def scalar(dsn: str, sql: str, *args: object) -> Any:  # the one value, of its column's type
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def rows_settled(dsn: str, expected: int) -> int:
    """The decisions count once the asynchronous writer has written ``expected`` rows (or 10 s)."""
    for _ in range(200):
        count = int(await scalar(dsn, "SELECT count(*) FROM decisions"))
        if count >= expected:
            return count
        await asyncio.sleep(0.05)
    return count


PDS_REFUSED = 'upload_gate_credential_checks_total{outcome="refused",stage="pds"}'


async def metric(gate_admin: str, line_prefix: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(gate_admin + "/metrics") as r:
        text = await r.text()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_prefix)]
    return sum(values)


async def test_a_refused_caller_gets_the_pds_answer_and_leaves_nothing(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    rec, _ = upstream
    rec.accepted_auth = {ALICE_BEARER}
    banned, clean = images.noise_png(1), images.noise_png(2)
    gate = await start_gate(policy=HOLD_EXACT, banks={"review": f"sha256,{sha(banned)},t"})
    refused = await metric(gate.admin_url, PDS_REFUSED)  # counters are per process: other tests count too

    on_banned = await upload(gate.url, banned, "Bearer someone-else")
    on_clean = await upload(gate.url, clean, "Bearer someone-else")
    assert on_banned == on_clean
    assert on_banned[0] == 400 and json.loads(on_banned[1]) == INVALID_TOKEN
    assert rec.uploads()[0].body == clean  # the clean one was forwarded (and refused there)
    assert [p.headers["Authorization"] for p in rec.probes()] == ["Bearer someone-else"]

    # The same picture from the caller the PDS accepts is held, and only that is recorded; the PDS's
    # next DPoP nonce, sent with its acceptance, reaches the client on the gate's answer.
    rec.extra_headers = {"DPoP-Nonce": "nonce-2"}
    held = await upload(gate.url, banned, ALICE_BEARER)
    assert (held[0], json.loads(held[1])) == (400, {"error": "BlobHeld", "message": "held for review"})
    assert held[2]["DPoP-Nonce"] == "nonce-2"
    assert await rows_settled(fresh_dsn, 1) == 1
    assert await scalar(fresh_dsn, "SELECT did FROM decisions") == ALICE
    assert await scalar(fresh_dsn, "SELECT count(*) FROM evidence") == 1
    assert await metric(gate.admin_url, PDS_REFUSED) == refused + 2


async def test_past_the_hourly_cap_the_verdict_stands_and_nothing_more_is_kept(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    held = [images.noise_png(seed) for seed in (11, 12, 13)]
    policy = HOLD_EXACT + "\n[evidence]\nmax_held_per_did_per_hour = 2\n"
    gate = await start_gate(policy=policy, banks={"review": "\n".join(f"sha256,{sha(b)},t" for b in held)})
    capped = await metric(gate.admin_url, 'upload_gate_evidence_total{result="capped"')
    answers = [(await upload(gate.url, body, ALICE_BEARER))[0] for body in held]
    assert answers == [400, 400, 400]
    assert await scalar(fresh_dsn, "SELECT count(*) FROM evidence WHERE verified_did = $1", ALICE) == 2
    assert await scalar(fresh_dsn, "SELECT count(*) FROM evidence WHERE sha256 = $1", sha(held[2])) == 0
    await rows_settled(fresh_dsn, 3)
    error = await scalar(fresh_dsn, "SELECT error FROM decisions WHERE sha256 = $1", sha(held[2]))
    assert isinstance(error, str) and "per-uploader cap" in error
    assert await metric(gate.admin_url, 'upload_gate_evidence_total{result="capped"') == capped + 1


async def test_an_offline_check_the_pds_contradicts_switches_itself_off(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    secret = "0123456789abcdef0123456789abcdef"
    now = int(time.time())
    token = hs256({"sub": ALICE, "aud": "did:web:pds.example", "exp": now + 600, "iat": now}, secret)
    # Misconfigured: the gate believes the PDS's DID is another one, so it refuses every real token.
    gate = await start_gate(GATE_PDS_JWT_SECRET=secret, GATE_PDS_SERVICE_DID="did:web:misconfigured")
    disagreed = await metric(gate.admin_url, 'upload_gate_credential_checks_total{outcome="disagreed"')
    first = await upload(gate.url, images.noise_png(21), f"Bearer {token}")
    assert first[0] == 200  # the PDS accepted the probe: the upload went on, read and forwarded
    assert len(rec.probes()) == 1 and len(rec.uploads()) == 1
    second = await upload(gate.url, images.noise_png(22), f"Bearer {token}")
    assert second[0] == 200
    assert len(rec.probes()) == 1 and len(rec.uploads()) == 2  # no second probe: the check is off
    assert (
        await metric(gate.admin_url, 'upload_gate_credential_checks_total{outcome="disagreed"')
        == disagreed + 1
    )
