"""Uploads through the real gate on its real port → rows in Postgres (the decision log end to end)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.store.embedded import EmbeddedPostgres
from tests.integration.conftest import POLICY, GateFactory
from tests.support import images
from tests.support.cids import cid_of
from tests.support.postgres import server_dir
from tests.support.upstream import RecordingUpstream

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
Upstream = tuple[RecordingUpstream, str]


def _b64(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


# An access token naming did:plc:alice (the fake upstream accepts any credential, so it is verified).
TOKEN = ".".join([_b64({"typ": "at+jwt", "alg": "HS256"}), _b64({"sub": "did:plc:alice"}), "c2ln"])
AUTH = {"Authorization": f"Bearer {TOKEN}"}

SHADOW_POLICY = (
    POLICY
    + """
[[rules]]
name = "trial-exact"
source = "local"
banks = ["trial"]
signal_types = ["sha256"]
action = "reject"
shadow = true
"""
)


async def post(url: str, body: bytes, content_type: str = "image/png") -> int:
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=body, headers={**AUTH, "Content-Type": content_type}) as r:
            await r.read()
            return r.status


async def rows_when(dsn: str, count: int, limit: float = 30.0) -> list[dict[str, object]]:
    """The decisions table once it holds ``count`` rows (the writer is asynchronous by design)."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = asyncio.get_running_loop().time() + limit
        while True:
            rows = [dict(r) for r in await conn.fetch("SELECT * FROM decisions ORDER BY time, id")]
            if len(rows) >= count or asyncio.get_running_loop().time() > deadline:
                return rows
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def spooled_records(admin_url: str, settle: float = 10.0) -> float:
    """The spool gauge from the gate's /metrics, once it stops changing (the writer is asynchronous)."""
    last: float | None = None
    deadline = asyncio.get_running_loop().time() + settle
    while True:
        async with aiohttp.ClientSession() as s, s.get(admin_url + "/metrics") as r:
            text = await r.text()
        [line] = [x for x in text.splitlines() if x.startswith("upload_gate_decision_log_spool_records ")]
        value = float(line.split()[1])
        if value == last or asyncio.get_running_loop().time() > deadline:
            return value
        last = value
        await asyncio.sleep(0.3)


async def test_forward_reject_quarantine_shadow_rows(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    rec, _ = upstream
    clean, banned, shady = images.noise_png(11), images.noise_png(12), images.noise_png(13)
    held = images.jpeg()
    held_pdq = hash_bytes(held, HashOptions()).pdq[0].hex
    gate = await start_gate(
        policy=SHADOW_POLICY,
        banks={
            "blocklist": f"sha256,{hashlib.sha256(banned).hexdigest()},c-banned",
            "review": f"pdq,{held_pdq},c-review",
            "trial": f"sha256,{hashlib.sha256(shady).hexdigest()},c-trial",
        },
    )
    assert await post(gate.url + UPLOAD, clean) == 200
    assert await post(gate.url + UPLOAD, banned) == 400
    assert await post(gate.url + UPLOAD, held, "image/jpeg") == 400
    assert await post(gate.url + UPLOAD, shady) == 200
    assert len(rec.uploads()) == 2

    rows = await rows_when(fresh_dsn, 4)
    assert len(rows) == 4
    forward, reject, quarantine, shadow = rows
    for row, body in ((forward, clean), (reject, banned), (quarantine, held), (shadow, shady)):
        assert row["sha256"] == hashlib.sha256(body).hexdigest()
        assert row["md5"] == hashlib.md5(body).hexdigest()
        assert row["sha1"] == hashlib.sha1(body).hexdigest()
        assert row["cid"] == cid_of(body)
        assert row["size"] == len(body)
        # The fake PDS accepted the caller (forwarded, or the probe of a blocked upload): a verified DID.
        assert (row["did"], row["did_method"], row["did_verified"], row["verified_how"]) == (
            "did:plc:alice", "access_jwt", True, "pds",
        )  # fmt: skip
        assert str(row["client_ip"]) == "127.0.0.1"
        assert row["source"] == "upload"
        assert row["policy_version"]
        assert {"hash"} <= set(json.loads(str(row["timings_ms"])))
    assert (forward["verdict"], forward["rule"], forward["reason"], forward["upstream_status"]) == (
        "forward",
        "no_match",
        "no_match",
        200,
    )
    assert (forward["shadow_rule"], forward["shadow_only"], forward["error"]) == (None, False, None)
    assert forward["media_type"] == "image/png" and forward["declared_type"] == "image/png"
    assert json.loads(str(forward["pdq"]))[0]["quality"] > 0
    assert json.loads(str(forward["matches"])) == []

    assert (reject["verdict"], reject["rule"], reject["upstream_status"]) == ("reject", "block-exact", None)
    [m] = json.loads(str(reject["matches"]))
    assert (m["source"], m["bank"], m["signal"], m["distance"], m["content_id"], m["label"]) == (
        "local",
        "blocklist",
        "sha256",
        None,
        "blocklist.csv:1",
        "c-banned",
    )

    assert (quarantine["verdict"], quarantine["rule"]) == ("quarantine", "hold-pdq")
    assert quarantine["media_type"] == "image/jpeg"
    [m] = json.loads(str(quarantine["matches"]))
    assert (m["bank"], m["signal"], m["distance"], m["label"]) == ("review", "pdq", 0, "c-review")

    assert (shadow["verdict"], shadow["upstream_status"]) == ("forward", 200)
    assert (shadow["shadow_verdict"], shadow["shadow_rule"], shadow["shadow_only"]) == (
        "reject",
        "trial-exact",
        True,
    )
    [m] = json.loads(str(shadow["shadow_matches"]))
    assert (m["bank"], m["label"]) == ("trial", "c-trial")


@pytest.fixture
def own_data_dir() -> Iterator[Path]:
    """Requested before ``start_gate`` so it outlives the gate (torn down after it)."""
    with server_dir() as data:
        yield data


async def test_postgres_stopped_under_a_running_gate(
    own_data_dir: Path, start_gate: GateFactory, upstream: Upstream
) -> None:
    """The gate's own embedded Postgres, really stopped while uploads keep coming."""
    rec, _ = upstream
    data = own_data_dir
    gate = await start_gate(DATABASE_URL="", GATE_DATA_DIR=str(data), GATE_DECISION_RETRY_INTERVAL="0.2")
    server = EmbeddedPostgres(data)  # a handle on the gate's server, to stop and restart it
    dsn = await asyncio.to_thread(server.start)
    spool = data / "spool" / "decisions.spool"
    bodies = [images.noise_png(100 + n, size=32) for n in range(60)]

    for body in bodies[:20]:
        assert await post(gate.url + UPLOAD, body) == 200
    assert len(await rows_when(dsn, 20)) == 20

    await asyncio.to_thread(server.halt)
    for body in bodies[20:45]:
        assert await post(gate.url + UPLOAD, body) == 200  # answered as before
    # Every decision since the stop is in the spool, and the gauge says so.
    assert await spooled_records(gate.admin_url) == 25.0
    assert spool.stat().st_size > 0

    await asyncio.to_thread(server.resume)
    for body in bodies[45:]:
        assert await post(gate.url + UPLOAD, body) == 200
    rows = await rows_when(dsn, 60)
    assert len(rows) == 60
    assert sorted(str(r["sha256"]) for r in rows) == sorted(hashlib.sha256(b).hexdigest() for b in bodies)
    assert len(rec.uploads()) == 60
    assert await spooled_records(gate.admin_url) == 0.0
    assert spool.stat().st_size == 0
    # The gate stops its embedded server on shutdown (start_gate's teardown).
