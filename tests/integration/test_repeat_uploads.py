"""A repeat of the same bytes through the real gate: the same credential's retry (a DPoP-nonce 401, then
the same upload again) is answered after a SHA-256, before any decoding; every other credential is
judged in full and checked by the PDS as always, and learns nothing from another caller's upload."""

from __future__ import annotations

import hashlib
import json

import asyncpg

from tests.integration.auth.test_trust_gate import rows_settled, upload
from tests.integration.conftest import POLICY, GateFactory
from tests.support import images
from tests.support.tokens import ALICE_BEARER
from tests.support.upstream import INVALID_TOKEN, RecordingUpstream

Upstream = tuple[RecordingUpstream, str]
BOB = "Bearer bob-session"


async def rows(dsn: str) -> list[tuple[bool, list[str], str | None]]:
    """(cached, the stages timed, error) of every decision row, oldest first."""
    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetch("SELECT cached, timings_ms, error FROM decisions ORDER BY time")
    finally:
        await conn.close()
    return [(r["cached"], sorted(json.loads(r["timings_ms"])), r["error"]) for r in found]


async def test_a_retry_skips_hashing_and_another_credential_pays_its_own_checks(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    rec, _ = upstream
    rec.accepted_auth = {ALICE_BEARER, BOB}
    banned, clean = images.noise_png(31), images.noise_png(32)
    gate = await start_gate(
        policy=POLICY, banks={"blocklist": f"sha256,{hashlib.sha256(banned).hexdigest()},t"}
    )
    rejected = {"error": "BlobRejected", "message": "rejected by policy"}

    # A caller the PDS refuses, before and after Alice's uploads: the same answer as for a clean picture.
    stranger = [await upload(gate.url, body, "Bearer stranger") for body in (banned, clean)]
    answers = [(await upload(gate.url, banned, ALICE_BEARER))[:2] for _ in range(2)]
    assert [(s, json.loads(b)) for s, b in answers] == [(400, rejected)] * 2
    stranger += [await upload(gate.url, body, "Bearer stranger") for body in (banned, clean)]
    assert [(s, json.loads(b)) for s, b, _ in stranger] == [(400, INVALID_TOKEN)] * 4
    bob = await upload(gate.url, banned, BOB)
    assert (bob[0], json.loads(bob[1])) == (400, rejected)

    # Every block verdict was revealed only after the PDS accepted that very caller.
    probes = [p.headers["Authorization"] for p in rec.probes()]
    assert probes == ["Bearer stranger", ALICE_BEARER, ALICE_BEARER, "Bearer stranger", BOB]
    assert await rows_settled(fresh_dsn, 3) == 3  # the stranger left no row
    first, retry, other = await rows(fresh_dsn)
    assert "hash" in first[1]  # Alice's first upload was hashed for her (its verdict was the stranger's)
    assert retry[0] is True and "sha256" in retry[1] and "hash" not in retry[1]  # nothing decoded
    assert other[0] is True and "hash" in other[1]  # Bob's bytes were hashed for Bob
