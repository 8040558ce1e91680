"""POST /api/v1/scan and GET /api/v1/decisions on a running gate: the decision is the one an upload of the
same bytes gets, whether the bytes are sent or named as a blob the PDS stores; record=true writes it to the
decision log (source api), and the log can be read back with the CLI's filters — never the uploader's
address, never evidence."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import asyncpg

from gate.admin.tokens import Role
from tests.integration.api.conftest import PHOTO, ApiGate, api_gate, banks
from tests.integration.conftest import POLICY, GateFactory
from tests.support import images
from tests.support.cids import cid_of
from tests.support.tokens import ALICE_BEARER
from tests.support.upstream import RecordingUpstream

DID = "did:plc:" + "a" * 24
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"


async def test_scan_decides_as_an_upload_of_the_same_bytes_would(api: ApiGate) -> None:
    clean = images.noise_png()
    async with api.client() as c:
        async with c.post("/api/v1/scan", data=PHOTO) as r:
            assert r.status == 200, await r.text()
            banned = await r.json()
        async with c.post(
            "/api/v1/scan", json={"data": base64.b64encode(images.near_duplicate()).decode()}
        ) as r:
            held = await r.json()
        async with c.post("/api/v1/scan", data=clean, headers={"Content-Type": "image/png"}) as r:
            passed = await r.json()
    assert (banned["decision"]["verdict"], banned["decision"]["rule"]) == ("reject", "block-exact")
    assert banned["decision"]["matches"][0]["bank"] == "blocklist" and banned["recorded"] is None
    assert banned["hashes"]["sha256"] == hashlib.sha256(PHOTO).hexdigest()
    assert (held["decision"]["verdict"], held["decision"]["rule"]) == ("quarantine", "hold-pdq")
    assert passed["decision"]["verdict"] == "forward" and passed["decision"]["reason"] == "no_match"
    # Nothing was done about the verdicts: no evidence, no row, and the PDS never saw the bytes.
    assert api.upstream.seen == []
    assert await _rows(api, "SELECT count(*) AS n FROM evidence") == [{"n": 0}]
    assert await _rows(api, "SELECT count(*) AS n FROM decisions") == [{"n": 0}]
    audit = await api.audit()
    assert [(a["action"], json.loads(a["detail"])["verdict"]) for a in audit] == [
        ("api_scan", "reject"),
        ("api_scan", "quarantine"),
        ("api_scan", "forward"),
    ]
    # The same bytes uploaded get the same decision.
    async with (
        api.gate_client() as public,
        public.post(UPLOAD, data=PHOTO, headers={"Authorization": ALICE_BEARER}) as r,
    ):
        assert (r.status, (await r.json())["error"]) == (400, "BlobRejected")


async def test_scan_of_a_stored_blob_fetches_checks_and_records_it(api: ApiGate) -> None:
    api.upstream.blobs = {(DID, cid_of(PHOTO)): PHOTO, (DID, cid_of(b"other")): b"not the CID's bytes"}
    async with api.client() as c:
        async with c.post("/api/v1/scan?record=true", json={"did": DID, "cid": cid_of(PHOTO)}) as r:
            assert r.status == 200, await r.text()
            answer = await r.json()
        async with c.post("/api/v1/scan", json={"did": DID, "cid": cid_of(b"missing")}) as r:
            assert (r.status, (await r.json())["error"]) == (404, "NotFound")
        async with c.post("/api/v1/scan", json={"did": DID, "cid": cid_of(b"other")}) as r:
            assert r.status == 502
            assert (await r.json())[
                "message"
            ] == "the PDS's bytes for this CID do not match it; nothing was judged"
        async with c.post("/api/v1/scan", json={"did": "did:example:x", "cid": cid_of(PHOTO)}) as r:
            assert (r.status, (await r.json())["error"]) == (400, "InvalidRequest")
    assert answer["decision"]["verdict"] == "reject" and answer["recorded"]
    [row] = await _wait_rows(api, "SELECT * FROM decisions")
    assert (row["id"].hex, row["source"], row["verdict"], row["did"], row["did_verified"]) == (
        answer["recorded"],
        "api",
        "reject",
        DID,
        True,
    )
    assert row["cid"] == cid_of(PHOTO) and row["client_ip"] is None
    [audit] = [a for a in await api.audit() if json.loads(a["detail"]).get("recorded")]
    assert json.loads(audit["detail"])["did"] == DID and audit["actor"] == "the-service"


async def test_decisions_are_listed_with_the_clis_filters_and_without_addresses(api: ApiGate) -> None:
    async with api.gate_client() as public:
        for body in (PHOTO, images.noise_png()):
            async with public.post(UPLOAD, data=body, headers={"Authorization": ALICE_BEARER}) as r:
                await r.read()
    await _wait_rows(api, "SELECT id FROM decisions", 2)
    async with api.client() as c:
        async with c.get("/api/v1/decisions") as r:
            assert r.status == 200, await r.text()
            everything = (await r.json())["decisions"]
        async with c.get("/api/v1/decisions", params={"verdict": "reject", "since": "1h", "limit": "5"}) as r:
            rejected = (await r.json())["decisions"]
        async with c.get("/api/v1/decisions", params={"sha256": everything[0]["sha256"].upper()}) as r:
            by_hash = (await r.json())["decisions"]
        async with c.get("/api/v1/decisions", params={"until": "2000-01-01T00:00:00Z"}) as r:
            nothing = (await r.json())["decisions"]
        for bad in (
            {"limit": "0"},
            {"limit": "1001"},
            {"since": "yesterday"},
            {"verdict": "maybe"},
            {"since": "2026-01-01"},
        ):
            async with c.get("/api/v1/decisions", params=bad) as r:
                assert (r.status, (await r.json())["error"]) == (400, "InvalidRequest"), bad
    assert len(everything) == 2 and all("client_ip" not in row for row in everything)
    assert [row["verdict"] for row in rejected] == ["reject"] and rejected[0]["source"] == "upload"
    assert by_hash == [everything[0]] and nothing == []
    assert [a["action"] for a in await api.audit()] == ["api_decisions"] * 4


async def test_a_reviewer_cannot_scan(api: ApiGate) -> None:
    async with api.client(role=Role.REVIEWER) as c, c.post("/api/v1/scan", data=PHOTO) as r:
        assert r.status == 403


async def _rows(api: ApiGate, sql: str) -> list[dict[str, Any]]:  # a column per key, of its own type
    conn = await asyncpg.connect(api.dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def _wait_rows(api: ApiGate, sql: str, n: int = 1) -> list[dict[str, Any]]:
    for _ in range(100):  # the decision log writes in batches, off the request
        rows = await _rows(api, sql)
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"{n} rows never appeared")


WATCH_RULE = """
[[rules]]
name = "watch"
source = "local"
banks = ["watch"]
signal_types = ["sha256"]
action = "quarantine"
shadow = true
"""


async def test_record_writes_a_source_api_row_only_when_asked_and_every_cli_filter_finds_it(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], fresh_dsn: str
) -> None:
    """record=true: one row (source api; the blob's DID when named, none for bytes sent); record=false or
    absent: none. The rows are then found by each filter ``upload-gate decisions`` has."""
    watched, clean = images.noise_png(41), images.noise_png(42)
    api = await api_gate(
        start_gate,
        upstream,
        fresh_dsn,
        policy=POLICY + WATCH_RULE,
        banks={**banks(), "watch": f"sha256,{hashlib.sha256(watched).hexdigest()},w"},
    )
    api.upstream.blobs = {(DID, cid_of(watched)): watched}
    async with api.client() as c:
        for query, body in (("?record=false", clean), ("", clean)):
            async with c.post(f"/api/v1/scan{query}", data=body) as r:
                assert (r.status, (await r.json())["recorded"]) == (200, None)
        async with c.post("/api/v1/scan?record=true", data=PHOTO) as r:
            banned = await r.json()
        async with c.post("/api/v1/scan?record=1", json={"did": DID, "cid": cid_of(watched)}) as r:
            shadowed = await r.json()
    assert banned["decision"]["verdict"] == "reject" and shadowed["decision"]["verdict"] == "forward"
    # The log writes in order, in batches: once the recorded rows are there, an unrecorded one would be.
    rows = await _wait_rows(api, "SELECT id, source, did, client_ip, cid FROM decisions ORDER BY time", 2)
    await asyncio.sleep(0.3)
    assert await _rows(api, "SELECT count(*) AS n FROM decisions") == [{"n": 2}]
    assert [(r["id"].hex, r["source"], r["did"], r["client_ip"]) for r in rows] == [
        (banned["recorded"], "api", None, None),
        (shadowed["recorded"], "api", DID, None),
    ]

    async def ids(**filters: str) -> list[str]:
        async with api.client() as c, c.get("/api/v1/decisions", params=filters) as r:
            assert r.status == 200, await r.text()
            return [row["id"] for row in (await r.json())["decisions"]]

    both = [shadowed["recorded"], banned["recorded"]]  # newest first
    assert await ids(source="api") == both
    assert await ids(source="upload") == []
    assert await ids(did=DID) == [shadowed["recorded"]]
    assert await ids(cid=cid_of(PHOTO)) == [banned["recorded"]]
    assert await ids(rule="block-exact") == [banned["recorded"]]
    assert await ids(shadow="true") == [shadowed["recorded"]]
    assert await ids(shadow="false", verdict="forward") == [shadowed["recorded"]]
    assert await ids(since="1h", until="2999-01-01T00:00:00Z", limit="1") == [shadowed["recorded"]]
