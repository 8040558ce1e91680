"""The labeler on the gate's public listener, over a real Postgres: queryLabels (patterns, sources, paging,
bad parameters), subscribeLabels (backfill from a cursor, then live; FutureCursor; the subscriber cap),
signatures stored once and checked with the atproto SDK's verifier; without a labeler the routes are
the PDS's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import libipld
import pytest
from atproto_crypto.verify import verify_signature

from gate.labels.key import LabelerKey
from gate.labels.store import LabelStore
from gate.serve import RunningGate
from gate.store.pool import Pool
from tests.integration.conftest import GateFactory
from tests.support.upstream import RecordingUpstream

SRC = "did:plc:labeler000000000000000"
POST = "at://did:plc:author0000000000000000/app.bsky.feed.post/3kaaa"
OTHER = "at://did:plc:other00000000000000000/app.bsky.feed.post/3kbbb"
QUERY = "/xrpc/com.atproto.label.queryLabels"
SUBSCRIBE = "/xrpc/com.atproto.label.subscribeLabels"


@pytest.fixture
def key() -> LabelerKey:
    return LabelerKey.generate()


@pytest.fixture
async def store(fresh_dsn: str) -> AsyncIterator[LabelStore]:
    pool = Pool(fresh_dsn)
    try:
        yield LabelStore(pool)
    finally:
        await pool.close()


async def labeler_gate(start_gate: GateFactory, key: LabelerKey, **env: str) -> RunningGate:
    return await start_gate(
        GATE_LABELER_DID=SRC,
        GATE_LABELER_KEY=f"{key.private.private_numbers().private_value:064x}",
        GATE_LABELS_POLL_INTERVAL="0.1",
        **env,
    )


async def query(gate: RunningGate, params: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(gate.url + QUERY, params=params) as r:
        return r.status, await r.json()


def verified(key: LabelerKey, label: dict[str, Any], sig: bytes) -> bool:
    unsigned = {k: v for k, v in label.items() if k != "sig"}
    return bool(verify_signature(key.did_key, libipld.encode_dag_cbor(unsigned), sig))


def json_sig(label: dict[str, Any]) -> bytes:
    import base64

    text = label["sig"]["$bytes"]
    return base64.b64decode(text + "=" * (-len(text) % 4))


async def test_query_labels(start_gate: GateFactory, key: LabelerKey, store: LabelStore) -> None:
    gate = await labeler_gate(start_gate, key)
    await store.apply(SRC, POST, ["hash-match", "second"], None)
    await store.apply(SRC, OTHER, ["hash-match"], None)
    await store.apply(SRC, POST, ["hash-match"], None)  # applies already: no new row
    await store.negate(SRC, POST, ["second"])

    status, body = await query(gate, [("uriPatterns", "*")])
    assert status == 200
    current = [(x["uri"], x["val"], x.get("neg", False)) for x in body["labels"]]
    assert current == [(POST, "hash-match", False), (OTHER, "hash-match", False), (POST, "second", True)]
    assert body["cursor"] == "4"
    for label in body["labels"]:
        assert label["src"] == SRC and label["ver"] == 1
        assert verified(key, label, json_sig(label))
    # Signed once and kept: a second reading hands out the same signatures.
    assert (await query(gate, [("uriPatterns", "*")]))[1] == body

    _, exact = await query(gate, [("uriPatterns", OTHER)])
    assert [x["uri"] for x in exact["labels"]] == [OTHER]
    _, prefix = await query(gate, [("uriPatterns", "at://did:plc:author0000000000000000/*")])
    assert {x["uri"] for x in prefix["labels"]} == {POST}
    _, page = await query(gate, [("uriPatterns", "*"), ("limit", "1"), ("cursor", "2")])
    assert [x["uri"] for x in page["labels"]] == [OTHER] and page["cursor"] == "3"
    _, none = await query(gate, [("uriPatterns", "*"), ("sources", "did:plc:someoneelse")])
    assert none == {"labels": []}
    _, mine = await query(gate, [("uriPatterns", "*"), ("sources", SRC)])
    assert len(mine["labels"]) == 3

    for bad in (
        [],
        [("uriPatterns", "at://*/x")],
        [("uriPatterns", "*"), ("limit", "0")],
        [("uriPatterns", "*"), ("limit", "251")],
        [("uriPatterns", "*"), ("cursor", "x")],
    ):
        status, answer = await query(gate, bad)
        assert status == 400, bad
        assert answer["error"] == "InvalidRequest" and answer["message"]


@contextlib.asynccontextmanager
async def subscribed(
    gate: RunningGate, cursor: int | None = None
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    params = {} if cursor is None else {"cursor": str(cursor)}
    async with aiohttp.ClientSession() as s, s.ws_connect(gate.url + SUBSCRIBE, params=params) as ws:
        yield ws


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> tuple[dict[str, Any], dict[str, Any]]:
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type is aiohttp.WSMsgType.BINARY, msg
    header, body = libipld.decode_dag_cbor_multi(msg.data)
    return header, body


async def test_subscribe_backfills_then_streams_live(
    start_gate: GateFactory, key: LabelerKey, store: LabelStore
) -> None:
    gate = await labeler_gate(start_gate, key)
    await store.apply(SRC, POST, ["one", "two"], None)
    async with subscribed(gate, 1) as ws:
        header, body = await next_frame(ws)
        assert header == {"op": 1, "t": "#labels"}
        assert body["seq"] == 2 and [x["val"] for x in body["labels"]] == ["two"]
        # Live: written (by another process, for all the gate knows) while the subscriber waits.
        await store.negate(SRC, POST, ["one"])
        _, body = await next_frame(ws)
        (label,) = body["labels"]
        assert (body["seq"], label["val"], label["neg"]) == (3, "one", True)
        assert verified(key, label, label["sig"])

    async with subscribed(gate) as live:  # no cursor: only what comes next
        await asyncio.sleep(0.3)
        await store.apply(SRC, OTHER, ["three"], None)
        _, body = await next_frame(live)
        assert body["seq"] == 4 and body["labels"][0]["uri"] == OTHER

    async with subscribed(gate, 99) as future:
        header, body = await next_frame(future)
        assert header == {"op": -1} and body["error"] == "FutureCursor"
        assert (await asyncio.wait_for(future.receive(), 10)).type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
        )


async def test_concurrent_writers_never_make_a_reader_skip(
    start_gate: GateFactory, key: LabelerKey, store: LabelStore
) -> None:
    """Labels written at once by many transactions reach a live subscriber in sequence, none missing."""
    gate = await labeler_gate(start_gate, key)
    async with subscribed(gate, 0) as ws:
        await asyncio.gather(*(store.apply(SRC, f"{POST}{i}", ["v"], None) for i in range(40)))
        seqs = [(await next_frame(ws))[1]["seq"] for _ in range(40)]
    assert seqs == list(range(1, 41))


async def test_the_subscriber_cap(start_gate: GateFactory, key: LabelerKey) -> None:
    gate = await labeler_gate(start_gate, key, GATE_LABELS_MAX_SUBSCRIBERS="1")
    async with subscribed(gate):
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as s, s.get(gate.url + SUBSCRIBE) as r:
            assert r.status == 503 and r.headers["Retry-After"]
            assert (await r.json())["error"] == "NotReady"


async def test_without_a_labeler_the_routes_are_the_pds_s(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str]
) -> None:
    gate = await start_gate()
    async with aiohttp.ClientSession() as s, s.get(gate.url + QUERY, params={"uriPatterns": "*"}) as r:
        await r.read()
    assert any(QUERY in seen.raw_path for seen in upstream[0].seen)
