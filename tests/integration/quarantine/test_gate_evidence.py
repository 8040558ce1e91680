"""Evidence through the real gate on real ports: what is sealed, what is refused, what is withheld."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import subprocess
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from gate.quarantine.keys import Keyring, MissingEvidenceKey
from gate.store.evidence import Evidence
from gate.store.item import EvidenceState
from gate.store.pool import Pool
from gate.store.retention import Retention
from tests.integration.conftest import POLICY, GateFactory
from tests.support import boot, images
from tests.support.boot import TEST_EVIDENCE_KEY
from tests.support.cids import base58btc, cid_of
from tests.support.tokens import ALICE_BEARER
from tests.support.upstream import RecordingUpstream

from .conftest import judged

AUTH = {"Authorization": ALICE_BEARER, "Content-Type": "image/jpeg"}
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
Upstream = tuple[RecordingUpstream, str]
HOLD_EXACT = (
    POLICY
    + '\n[[rules]]\nname = "hold-exact"\nsource = "local"\nbanks = ["review"]\nsignal_types = ["sha256"]\naction = "quarantine"\n'
)
PDS_NOT_FOUND = {"error": "InvalidRequest", "message": "Blob not found"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.post(url + UPLOAD, data=body, headers=AUTH) as r:
        return r.status, await r.json(content_type=None)


async def upload_without_evidence_table(dsn: str, url: str, body: bytes) -> tuple[int, dict[str, object]]:
    """Upload while the evidence store cannot write (its table renamed away), then put it back."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE evidence RENAME TO evidence_gone")
        return await upload(url, body)
    finally:
        await conn.execute("ALTER TABLE evidence_gone RENAME TO evidence")
        await conn.close()


async def get_blob(url: str, cid: str) -> tuple[int, object]:
    query = f"/xrpc/com.atproto.sync.getBlob?did=did:plc:abc&cid={cid}"
    async with aiohttp.ClientSession() as s, s.get(url + query) as r:
        return r.status, await r.json(content_type=None)


async def test_quarantined_upload_is_sealed_before_the_answer(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    rec, _ = upstream
    body = images.jpeg("coffee.png")
    gate = await start_gate(policy=HOLD_EXACT, banks={"review": f"sha256,{sha(body)},t"})
    status, answer = await upload(gate.url, body)
    assert (status, answer) == (400, {"error": "BlobHeld", "message": "held for review"})
    assert rec.uploads() == []
    # The row exists as soon as the client has its answer; a separate store with the same key opens it.
    store = Evidence.on(Pool(fresh_dsn), Keyring.from_env(TEST_EVIDENCE_KEY))
    try:
        [item] = await store.items.list_items(EvidenceState.HELD)
        assert (item.sha256, item.cid, item.rule, item.verdict) == (
            sha(body),
            cid_of(body),
            "hold-exact",
            "quarantine",
        )
        assert item.matches[0]["bank"] == "review"
        assert await store.vault.decrypt(item.decision_id, "test", "reveal") == body
    finally:
        await store.db.close()


async def test_rejects_are_kept_only_when_the_policy_says_so(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    kept, dropped = images.jpeg("coffee.png"), images.jpeg()
    policy = POLICY + "\n[evidence]\nkeep_rejected = true\n"
    gate = await start_gate(policy=policy, banks={"blocklist": f"sha256,{sha(kept)},t"})
    assert (await upload(gate.url, kept))[0] == 400
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert await conn.fetchval("SELECT verdict FROM evidence WHERE sha256 = $1", sha(kept)) == "reject"
        assert await conn.fetchval("SELECT count(*) FROM evidence WHERE sha256 = $1", sha(dropped)) == 0
    finally:
        await conn.close()


async def test_store_failure_answers_503_and_forwards_nothing(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    rec, _ = upstream
    body = images.jpeg("coffee.png")
    gate = await start_gate(policy=HOLD_EXACT, banks={"review": f"sha256,{sha(body)},t"})
    status, answer = await upload_without_evidence_table(fresh_dsn, gate.url, body)
    assert status == 503 and answer["error"] == "Overloaded"
    assert rec.uploads() == []


async def test_gate_refuses_to_start_without_a_key(start_gate: GateFactory) -> None:
    with pytest.raises(MissingEvidenceKey, match="upload-gate keys init") as info:
        await start_gate(GATE_EVIDENCE_KEY="")
    assert "rules.hold-pdq" in str(info.value) and "on_unhashable" in str(info.value)


def serve(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m gate serve`` with the test policy; returns once it exits (these all refuse to start)."""
    (tmp_path / "banks").mkdir(exist_ok=True)
    for name in ("blocklist", "review", "allowlist"):
        (tmp_path / "banks" / f"{name}.csv").write_text("\n")
    (tmp_path / "policy.toml").write_text(POLICY)
    return boot.refused(
        {
            "GATE_POLICY": str(tmp_path / "policy.toml"),
            "GATE_BANKS_DIR": str(tmp_path / "banks"),
            "GATE_DATA_DIR": str(tmp_path / "var"),
            "GATE_LISTEN": "127.0.0.1:0",
            "GATE_METRICS_LISTEN": "127.0.0.1:0",
            **extra,
        }
    )


def test_serve_refuses_a_keyring_others_can_read(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    Keyring.from_env(TEST_EVIDENCE_KEY).save(keys, create=True)
    keys.chmod(0o644)
    done = serve(tmp_path, GATE_EVIDENCE_KEYS_FILE=str(keys))
    assert done.returncode == 2
    assert "evidence keyring is unusable" in done.stderr and f"chmod 600 {keys}" in done.stderr


def test_serve_without_a_key_says_how_to_make_one(tmp_path: Path) -> None:
    done = serve(tmp_path)
    assert done.returncode == 2
    # A missing key, said as such, on stderr: the policy itself is fine.
    assert done.stderr.splitlines()[-1].startswith("upload-gate: no evidence key, not starting:")
    assert "no evidence key is configured" in done.stderr and "upload-gate keys init" in done.stderr
    assert "invalid" not in done.stderr
    assert not (tmp_path / "var").exists()  # refused before anything was started or written


async def test_get_blob_of_blocked_cid_never_reaches_upstream(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    blocked, clean = images.jpeg("coffee.png"), images.jpeg()
    gate = await start_gate(banks={"blocklist": f"sha256,{sha(blocked)},t"})
    assert (await upload(gate.url, blocked))[0] == 400
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(blocked).digest()
    spellings = [cid_of(blocked), "z" + base58btc(raw), "B" + cid_of(blocked)[1:].upper()]
    for cid in spellings:
        assert await get_blob(gate.url, cid) == (400, PDS_NOT_FOUND), cid
    assert [s.raw_path for s in rec.seen] == [UPLOAD]  # the probe of the blocked upload, nothing else
    status, _ = await get_blob(gate.url, cid_of(clean))
    assert status == 200 and [s.raw_path for s in rec.seen[1:]] == [
        f"/xrpc/com.atproto.sync.getBlob?did=did:plc:abc&cid={cid_of(clean)}"
    ]


async def test_get_blob_withholds_what_postgres_says_was_blocked(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    rec, _ = upstream
    old = b"blocked by an earlier gate run"
    gate = await start_gate(GATE_WITHHELD_REFRESH_INTERVAL="0.1")
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(
            "INSERT INTO decisions (id, time, did_method, verdict, sha256, cid)"
            " VALUES (gen_random_uuid(), now(), 'none', 'quarantine', $1, $2)",
            sha(old),
            cid_of(old),
        )
    finally:
        await conn.close()
    for _ in range(100):
        if sha(old) in gate.deps.withheld:
            break
        await asyncio.sleep(0.05)
    assert await get_blob(gate.url, cid_of(old)) == (400, PDS_NOT_FOUND)
    assert rec.seen == []


def test_test_key_is_a_real_key() -> None:
    assert len(base64.b64decode(TEST_EVIDENCE_KEY)) == 32


async def test_store_failure_can_answer_as_usual_when_the_policy_says_block(
    start_gate: GateFactory, upstream: Upstream, fresh_dsn: str
) -> None:
    rec, _ = upstream
    body = images.jpeg("coffee.png")
    policy = HOLD_EXACT + '\n[evidence]\non_store_failure = "block"\n'
    gate = await start_gate(policy=policy, banks={"review": f"sha256,{sha(body)},t"})
    status, answer = await upload_without_evidence_table(fresh_dsn, gate.url, body)
    assert (status, answer) == (400, {"error": "BlobHeld", "message": "held for review"})
    assert rec.uploads() == []


async def test_reload_to_a_quarantining_policy_without_a_key_is_refused(start_gate: GateFactory) -> None:
    calm = POLICY.replace('on_unhashable = "quarantine"', 'on_unhashable = "reject"').replace(
        'action = "quarantine"', 'action = "reject"'
    )
    gate = await start_gate(policy=calm, GATE_EVIDENCE_KEY="")
    version = gate.deps.policy.current.version
    assert not gate.deps.policy.current.keeps_evidence
    gate.deps.policy.path.write_text(POLICY)
    assert await gate.deps.policy.reload() is False
    assert gate.deps.policy.current.version == version


async def test_a_keyring_that_lacks_the_sealing_key_is_said_at_start(
    start_gate: GateFactory, fresh_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A lost keyring volume (the image would make a new key on its next start) is not silent."""
    lost = Keyring.from_env(base64.b64encode(b"\x07" * 32).decode())
    store = Evidence.on(Pool(fresh_dsn), lost)
    try:
        record = judged(b"sealed under the lost key")
        await store.vault.keep(record, b"sealed under the lost key", Retention())
    finally:
        await store.db.close()
    with caplog.at_level(logging.ERROR, logger="gate.evidence"):
        await start_gate()  # the test key, not the lost one
    [line] = [r.getMessage() for r in caplog.records if "does not hold" in r.getMessage()]
    assert f"1 evidence item(s) are sealed under key(s) this keyring does not hold ({lost.active.id})" in line
