"""``upload-gate watch`` (its ``run_watch``) against a generated firehose, PLC directory and PDS on real
ports, over a real Postgres: what cannot be judged — a frame that does not decode, a DID that does not
resolve, a PDS that refuses getBlob or sends other bytes — is recorded and counted and the stream goes
on; a record type no AppView knows is walked like any other; the lag policy skips or waits."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import libipld
import pytest
from atproto_server.auth.jwt import verify_jwt_async
from prometheus_client import REGISTRY

from gate.firehose.command import run_watch
from gate.labels.key import LabelerKey
from gate.settings import Settings
from tests.integration.conftest import POLICY, write_config
from tests.support import firehose as fh
from tests.support.boot import gate_env
from tests.support.images import noise_png
from tests.support.receiver import receiver
from tests.support.waiting import until

BANNED = noise_png(11, 96)
CLEAN = noise_png(12, 96)
GOOD, UNKNOWN, REFUSER, LIAR = "did:plc:good", "did:plc:nobody", "did:plc:refuser", "did:plc:liar"


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def watching(
    tmp_path: Path, dsn: str, network: fh.Network, policy: str = POLICY, env: dict[str, str] | None = None
) -> AsyncIterator[None]:
    banks = {"blocklist": f"sha256,{__import__('hashlib').sha256(BANNED).hexdigest()},test"}
    policy_path, banks_dir = write_config(tmp_path, policy, banks)
    settings = Settings.from_env(
        {
            **gate_env(network.url, dsn, policy_path, banks_dir, tmp_path / "var"),
            "GATE_PLC_URL": network.url + "/plc",
            "GATE_FIREHOSE_PDS_ORIGINS": network.url,
            "GATE_WATCH_METRICS_LISTEN": "",
            "GATE_FIREHOSE_WORKERS": "2",
            **(env or {}),
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_watch(settings, network.url.replace("http", "ws"), False, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def decisions(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT * FROM decisions WHERE source = 'firehose' ORDER BY time")
    except asyncpg.UndefinedTableError:  # the watcher has not migrated the schema yet
        return []
    finally:
        await conn.close()
    return [dict(r) for r in rows]


@pytest.fixture
async def network() -> AsyncIterator[fh.Network]:
    net = fh.Network(dids={GOOD, REFUSER, LIAR}, refusing={REFUSER}, lying={LIAR})
    async with contextlib.aclosing(fh.running(net)) as it:
        yield await it.__anext__()


async def test_what_cannot_be_judged_is_recorded_and_the_stream_goes_on(
    tmp_path: Path, fresh_dsn: str, network: fh.Network, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gate.firehose")
    for data in (BANNED, CLEAN):
        network.blobs[fh.blob_cid(data)] = data
    other = noise_png(13, 64)
    network.blobs[fh.blob_cid(other)] = other
    gallery = {"$type": "com.example.gallery", "items": [{"deep": {"pic": fh.blob_ref(BANNED)}}]}
    network.frames = [
        b"\xa1\x62op\x01 not a frame",  # does not decode
        fh.commit(2, UNKNOWN, {"app.bsky.feed.post/a": fh.post(CLEAN)}),  # the PLC does not know it
        fh.commit(3, REFUSER, {"app.bsky.feed.post/b": fh.post(other)}),  # getBlob: 500
        fh.commit(4, GOOD, {"com.example.gallery/c": gallery}),  # a record type nobody knows
        fh.frame("#identity", {"seq": 5, "did": GOOD, "time": "2026-12-05T00:00:00.000Z"}),
        fh.commit(6, LIAR, {"app.bsky.actor.profile/self": {"avatar": fh.blob_ref(other)}}),  # other bytes
        fh.commit(7, GOOD, {"app.bsky.feed.post/d": fh.post(CLEAN)}),
        _broken_car(8),  # a commit whose blocks are not a CAR
        fh.commit(9, GOOD, {"app.bsky.feed.post/e": fh.post(other)}),  # and the stream still goes on
    ]
    before = {k: count("upload_gate_firehose_events_total", kind=k) for k in ("malformed", "other", "commit")}
    unknown_records = count("upload_gate_firehose_records_total", family="other")
    async with watching(tmp_path, fresh_dsn, network):
        await until("six firehose decisions", lambda: _n(fresh_dsn, 6))
        await until("the cursor at 9", lambda: _cursor(fresh_dsn, 9))
    rows = {r["record_uri"]: r for r in await decisions(fresh_dsn)}
    assert rows[f"at://{UNKNOWN}/app.bsky.feed.post/a"]["error"].startswith("identity: not_found")
    assert rows[f"at://{REFUSER}/app.bsky.feed.post/b"]["error"].startswith("fetch: http_5xx")
    assert rows[f"at://{LIAR}/app.bsky.actor.profile/self"]["error"].startswith("judge: cid_mismatch")
    for uri in (f"at://{UNKNOWN}/app.bsky.feed.post/a", f"at://{REFUSER}/app.bsky.feed.post/b"):
        assert rows[uri]["verdict"] is None and rows[uri]["source"] == "firehose"
    banned = rows[f"at://{GOOD}/com.example.gallery/c"]
    assert (banned["verdict"], banned["rule"], banned["did"]) == ("reject", "block-exact", GOOD)
    assert banned["cid"] == fh.blob_cid(BANNED)
    clean = rows[f"at://{GOOD}/app.bsky.feed.post/d"]
    assert (clean["verdict"], clean["cid"], clean["did_method"]) == (
        "forward",
        fh.blob_cid(CLEAN),
        "firehose",
    )
    assert count("upload_gate_firehose_events_total", kind="malformed") - before["malformed"] == 2
    assert count("upload_gate_firehose_events_total", kind="other") - before["other"] == 1
    assert count("upload_gate_firehose_events_total", kind="commit") - before["commit"] == 6
    assert count("upload_gate_firehose_records_total", family="other") - unknown_records == 1
    assert count("upload_gate_firehose_failures_total", stage="identity", kind="not_found") >= 1
    # The clean picture was fetched once only, though the unknown DID's record named it too.
    assert network.fetches.count(fh.blob_cid(CLEAN)) == 1
    # The progress line the watcher leaves when it stops says all of it.
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("firehose ws://")]
    assert re.fullmatch(
        r"firehose ws://127\.0\.0\.1:\d+: read to seq 9, cursor 9; 6 commits \([\d.]+/s\); "
        r"blobs 3 judged, 0 seen, 3 failed, 0 skipped \([\d.]+ judged/s\); queue 0/256, 0 in flight; "
        r"lag [\d.]+ s",
        lines[-1],
    ), lines


@pytest.mark.parametrize("on_lag", ["skip", "pause"])
async def test_the_lag_policy(tmp_path: Path, fresh_dsn: str, network: fh.Network, on_lag: str) -> None:
    network.blobs[fh.blob_cid(CLEAN)] = CLEAN
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    network.frames = [
        fh.commit(1, GOOD, {"app.bsky.feed.post/old": fh.post(CLEAN)}, at=hour_ago),
        fh.commit(2, GOOD, {"app.bsky.feed.post/new": fh.post(BANNED)}),
    ]
    network.blobs[fh.blob_cid(BANNED)] = BANNED
    policy = POLICY.replace(
        "[[rules]]", f'[firehose]\nmax_lag_seconds = 60\non_lag = "{on_lag}"\n\n[[rules]]', 1
    )
    skipped = count("upload_gate_firehose_blobs_total", outcome="skipped")
    async with watching(tmp_path, fresh_dsn, network, policy):
        await until("the cursor at 2", lambda: _cursor(fresh_dsn, 2))
        await until("the new post judged", lambda: _n(fresh_dsn, 1 if on_lag == "skip" else 2))
    uris = {r["record_uri"] for r in await decisions(fresh_dsn)}
    if on_lag == "skip":
        assert uris == {f"at://{GOOD}/app.bsky.feed.post/new"}
        assert count("upload_gate_firehose_blobs_total", outcome="skipped") - skipped == 1
        assert fh.blob_cid(CLEAN) not in network.fetches
    else:
        assert uris == {f"at://{GOOD}/app.bsky.feed.post/old", f"at://{GOOD}/app.bsky.feed.post/new"}


async def test_a_blob_in_two_commits_at_once_is_fetched_and_recorded_once(
    tmp_path: Path, fresh_dsn: str, network: fh.Network
) -> None:
    """Two workers given the same CID at the same moment (a re-post in the next commit): one fetch, one
    row; the other record gets the same judgement."""
    network.blobs[fh.blob_cid(CLEAN)] = CLEAN
    network.frames = [
        fh.commit(seq, GOOD, {f"app.bsky.feed.post/p{seq}": fh.post(CLEAN)}) for seq in range(1, 5)
    ]
    async with watching(tmp_path, fresh_dsn, network):
        await until("the cursor at 4", lambda: _cursor(fresh_dsn, 4))
    assert network.fetches.count(fh.blob_cid(CLEAN)) == 1
    assert len(await decisions(fresh_dsn)) == 1


async def test_the_lag_moves_on_commits_without_blobs(
    tmp_path: Path, fresh_dsn: str, network: fh.Network
) -> None:
    """A like made an hour ago and read now is an hour of lag, though it has nothing to judge: on a quiet
    stretch of the firehose the gauge must not keep the last busy moment's figure."""
    network.blobs[fh.blob_cid(CLEAN)] = CLEAN
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    like = {"$type": "app.bsky.feed.like", "createdAt": "2026-12-05T00:00:00.000Z"}
    network.frames = [
        fh.commit(1, GOOD, {"app.bsky.feed.post/new": fh.post(CLEAN)}),
        fh.commit(2, GOOD, {"app.bsky.feed.like/old": like}, at=hour_ago),
    ]
    async with watching(tmp_path, fresh_dsn, network):
        await until("the cursor at 2", lambda: _cursor(fresh_dsn, 2))
        assert count("upload_gate_firehose_lag_seconds") >= 3600


async def test_webhooks_name_the_firehose_and_the_record(
    tmp_path: Path, fresh_dsn: str, network: fh.Network
) -> None:
    network.blobs[fh.blob_cid(BANNED)] = BANNED
    network.blobs[fh.blob_cid(CLEAN)] = CLEAN
    network.frames = [
        fh.commit(1, GOOD, {"app.bsky.feed.post/clean": fh.post(CLEAN)}),
        fh.commit(2, GOOD, {"app.bsky.feed.post/banked": fh.post(BANNED)}),
    ]
    async with receiver() as hook:
        env = {"GATE_WEBHOOK_URL": hook.url + "/hook", "GATE_WEBHOOK_SECRET": "s" * 32}
        async with watching(tmp_path, fresh_dsn, network, env=env):
            await until("the webhook", lambda: _got(hook, 1))
            await until("both judged", lambda: _n(fresh_dsn, 2))
        await asyncio.sleep(0.3)  # nothing more arrives: the clean picture is no event
    (event,) = [json.loads(r.body) for r in hook.on("/hook")]
    assert event["type"] == "upload.rejected"
    data = event["data"]
    assert (data["source"], data["record_uri"]) == ("firehose", f"at://{GOOD}/app.bsky.feed.post/banked")
    assert (data["cid"], data["rule"], data["uploader"]["did"]) == (fh.blob_cid(BANNED), "block-exact", GOOD)


MOD_SERVICE = "did:web:mod.example"
LABELER = "did:plc:watchlabeler"
REPORTING = (
    POLICY
    + """
[[firehose.labels]]
rule = "block-exact"
values = ["hash-match"]
report = true
"""
)


@pytest.mark.parametrize("answer", [200, 500])
async def test_matches_are_reported_with_service_auth(
    tmp_path: Path, fresh_dsn: str, network: fh.Network, answer: int
) -> None:
    """A rule whose labels say ``report = true``: its matches go to the moderation service as
    createReport on the record, with a service-auth token the atproto SDK's own verifier accepts
    against the labeler's published key; a service that keeps failing is retried, then counted, and the
    stream goes on."""
    key = LabelerKey.from_hex("5a" * 32)
    network.blobs[fh.blob_cid(BANNED)] = BANNED
    network.blobs[fh.blob_cid(CLEAN)] = CLEAN
    banked = fh.post(BANNED)
    network.frames = [
        fh.commit(1, GOOD, {"app.bsky.feed.post/banked": banked}),
        fh.commit(2, GOOD, {"app.bsky.feed.post/clean": fh.post(CLEAN)}),
    ]
    failed = count("upload_gate_firehose_reports_total", outcome="failed")
    async with receiver() as mod:
        mod.statuses = [answer]
        env = {
            "GATE_LABELER_DID": LABELER,
            "GATE_LABELER_KEY": "5a" * 32,
            "GATE_REPORT_SERVICE_URL": mod.url,
            "GATE_REPORT_SERVICE_DID": MOD_SERVICE,
        }
        async with watching(tmp_path, fresh_dsn, network, REPORTING, env):
            await until("both judged", lambda: _n(fresh_dsn, 2))
            wanted = 1 if answer == 200 else 3  # a failing service is tried three times
            await until("the reports", lambda: _reports(mod, wanted), 15)
    calls = mod.on("/xrpc/com.atproto.moderation.createReport")
    assert len(calls) == wanted
    record_cid = libipld.encode_cid(fh.cid_bytes(libipld.encode_dag_cbor(banked), fh.DAG_CBOR))
    for call in calls:
        body = json.loads(call.body)
        assert body["subject"] == {
            "$type": "com.atproto.repo.strongRef",
            "uri": f"at://{GOOD}/app.bsky.feed.post/banked",
            "cid": record_cid,
        }
        assert body["reasonType"] == "com.atproto.moderation.defs#reasonViolation"
        assert "block-exact" in body["reason"]
        token = call.headers["Authorization"].removeprefix("Bearer ")

        async def published_key(iss: str, _fresh: bool) -> str:
            assert iss == f"{LABELER}#atproto_labeler"  # checked with the DID document's #atproto_label key
            return key.did_key

        payload = await verify_jwt_async(token, published_key, own_did=MOD_SERVICE)
        assert payload.exp is not None and payload.iat is not None and 0 < payload.exp - payload.iat <= 60
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert claims["lxm"] == "com.atproto.moderation.createReport"
    assert len({c.headers["Authorization"] for c in calls}) == len(calls)  # a fresh token per attempt
    # The label was written all the same.
    conn = await asyncpg.connect(fresh_dsn)
    try:
        labels = await conn.fetch("SELECT uri, val FROM labels")
    finally:
        await conn.close()
    assert [(r["uri"], r["val"]) for r in labels] == [
        (f"at://{GOOD}/app.bsky.feed.post/banked", "hash-match")
    ]
    assert count("upload_gate_firehose_reports_total", outcome="failed") - failed == (answer != 200)


async def _reports(mod: Any, n: int) -> bool:
    return len(mod.on("/xrpc/com.atproto.moderation.createReport")) >= n


async def _got(hook: Any, n: int) -> bool:
    return len(hook.on("/hook")) >= n


def _broken_car(seq: int) -> bytes:
    good = libipld.decode_dag_cbor_multi(fh.commit(seq, GOOD, {"app.bsky.feed.post/x": fh.post(CLEAN)}))[1]
    return fh.frame("#commit", {**good, "blocks": b"\x0anot a CAR at all"})


async def _n(dsn: str, n: int) -> bool:
    return len(await decisions(dsn)) >= n


async def _cursor(dsn: str, seq: int) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        newest: int | None = await conn.fetchval("SELECT max(seq) FROM firehose_cursors")
        return newest == seq
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await conn.close()
