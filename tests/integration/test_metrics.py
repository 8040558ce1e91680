"""What an operator's Prometheus reads from a real gate after real uploads: the whole upload's time by
outcome and its size, blocks per bank, the build and policy in force, readiness per check, and the
review backlog read from Postgres at scrape time."""

from __future__ import annotations

import hashlib
import platform

import aiohttp
import asyncpg

from gate import package_version
from tests.integration.conftest import POLICY, GateFactory
from tests.support import images
from tests.support.scrape import sample
from tests.support.tokens import ALICE_BEARER
from tests.support.upstream import RecordingUpstream

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
Upstream = tuple[RecordingUpstream, str]


async def post(url: str, body: bytes, authorization: str = ALICE_BEARER) -> int:
    headers = {"Authorization": authorization, "Content-Type": "image/png"}
    async with aiohttp.ClientSession() as s, s.post(url + UPLOAD, data=body, headers=headers) as r:
        await r.read()
        return r.status


async def test_uploads_are_timed_by_outcome_and_sized(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    banked, clean, stranger = images.noise_png(1), images.noise_png(2), images.noise_png(3)
    gate = await start_gate(banks={"blocklist": f"sha256,{hashlib.sha256(banked).hexdigest()},x"})
    rec.accepted_auth = {ALICE_BEARER}

    async def count(outcome: str) -> float:
        return await sample(gate.admin_url, "upload_gate_upload_seconds_count", outcome=outcome)

    before = {o: await count(o) for o in ("forward", "reject", "refused", "error")}
    size_sum = await sample(gate.admin_url, "upload_gate_upload_bytes_sum")
    bank = await sample(
        gate.admin_url, "upload_gate_bank_decisions_total", verdict="reject", source="local", bank="blocklist"
    )
    assert await post(gate.url, clean) == 200
    assert await post(gate.url, banked) == 400
    assert await post(gate.url, stranger, authorization="Bearer forged") == 400  # the PDS's refusal
    async with aiohttp.ClientSession() as s, s.post(gate.url + UPLOAD, data=clean) as r:
        assert r.status == 401  # no credential at all: the gate's own AuthMissing
    assert {o: await count(o) - before[o] for o in before} == {
        "forward": 1,
        "reject": 1,
        "refused": 1,
        "error": 1,
    }
    # Every body the gate read: the three with a credential (the anonymous one is answered unread).
    assert await sample(gate.admin_url, "upload_gate_upload_bytes_sum") - size_sum == (
        len(clean) + len(banked) + len(stranger)
    )
    assert (
        await sample(
            gate.admin_url,
            "upload_gate_bank_decisions_total",
            verdict="reject",
            source="local",
            bank="blocklist",
        )
        == bank + 1
    )


async def test_build_policy_readiness_and_memory_budget(start_gate: GateFactory) -> None:
    gate = await start_gate(GATE_MEMORY_BUDGET_BYTES="640M")
    version = gate.deps.policy.current.version
    labels = {"version": package_version(), "python": platform.python_version(), "policy_version": version}
    assert await sample(gate.admin_url, "upload_gate_build_info", **labels) == 1
    assert package_version() != "unknown"  # the package is installed (make: pip install -e .)
    for check in ("policy", "decision_log", "evidence"):
        assert await sample(gate.admin_url, "upload_gate_ready", check=check) == 1, check
    assert await sample(gate.admin_url, "upload_gate_memory_budget_bytes") == 640 * 1024**2


# The test policy with its exact-hash rule holding for review instead of rejecting.
HOLD_EXACT = POLICY.replace(
    'name = "block-exact"\nsource = "local"\nbanks = ["blocklist"]\nsignal_types = ["sha256", "md5"]\n'
    'action = "reject"',
    'name = "hold-exact"\nsource = "local"\nbanks = ["blocklist"]\nsignal_types = ["sha256", "md5"]\n'
    'action = "quarantine"',
)


async def test_review_backlog_is_read_from_postgres_when_scraped(
    start_gate: GateFactory, fresh_dsn: str
) -> None:
    assert HOLD_EXACT != POLICY
    held = [images.noise_png(10), images.noise_png(11)]
    rows = "\n".join(f"sha256,{hashlib.sha256(b).hexdigest()},x" for b in held)
    gate = await start_gate(policy=HOLD_EXACT, banks={"blocklist": rows})
    assert await sample(gate.admin_url, "upload_gate_evidence_items", state="held") == 0
    assert await sample(gate.admin_url, "upload_gate_review_oldest_held_seconds") == 0
    for body in held:
        assert await post(gate.url, body) == 400
    # One item has waited three hours (as if the reviewers were away), the other has just arrived.
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(
            "UPDATE evidence SET created_at = now() - interval '3 hours' WHERE sha256 = $1",
            hashlib.sha256(held[0]).hexdigest(),
        )
    finally:
        await conn.close()
    assert await sample(gate.admin_url, "upload_gate_evidence_items", state="held") == 2
    oldest = await sample(gate.admin_url, "upload_gate_review_oldest_held_seconds")
    assert 3 * 3600 <= oldest < 3 * 3600 + 60
    assert await sample(gate.admin_url, "upload_gate_evidence_items", state="confirmed") == 0
