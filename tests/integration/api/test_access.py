"""Who reaches the API, and where: only service and admin bearer tokens, only on the admin listener (the
public listener passes /api/ to the PDS like any other path), each token within its rate, bodies within
the upload limit and the uploads' memory budget."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gate.admin.auth import COOKIE
from gate.admin.tokens import Role, TokenStore
from gate.proxy.routing import UPLOAD_PATH
from tests.integration.api.conftest import PHOTO, ApiGate, api_gate, banks
from tests.integration.conftest import GateFactory
from tests.support.cids import cid_of
from tests.support.scrape import sample
from tests.support.tokens import ALICE_BEARER
from tests.support.upstream import RecordingUpstream

MATCH = {"sha256": "0" * 64}
DID = "did:plc:" + "a" * 24


async def test_only_service_and_admin_tokens_open_the_api(api: ApiGate) -> None:
    for role, status in ((Role.SERVICE, 200), (Role.ADMIN, 200), (Role.REVIEWER, 403)):
        async with api.client(role=role) as c, c.post("/api/v1/match", json=MATCH) as r:
            assert r.status == status, role
            if status == 403:
                assert await r.json() == {
                    "error": "Forbidden",
                    "message": "this token's role may not use the API: it needs the service or admin role",
                }
    for token in (None, "ugt_" + "A" * 43, "not-a-token"):
        async with api.client(token, role=None) as c, c.post("/api/v1/match", json=MATCH) as r:
            assert r.status == 401 and (await r.json())["error"] == "AuthRequired"
            assert r.headers["WWW-Authenticate"] == 'Bearer realm="upload-gate api"'
    # The review page's login cookie is never an API credential, whoever's token it holds.
    cookies = {COOKIE: api.tokens[Role.ADMIN]}
    async with aiohttp.ClientSession(base_url=api.url, cookies=cookies) as c:
        async with c.post("/api/v1/match", json=MATCH) as r:
            assert r.status == 401
    assert [(a["actor"], a["action"]) for a in await api.audit()] == [
        ("the-service", "api_match"),
        ("the-admin", "api_match"),
    ]


async def test_a_service_token_opens_nothing_of_the_review_site(api: ApiGate) -> None:
    async with api.client() as c:
        async with c.get("/admin/api/items") as r:
            assert (r.status, await r.json()) == (
                403,
                {"error": "Forbidden", "message": "this needs the reviewer role"},
            )
        form = {"token": api.tokens[Role.SERVICE]}
        async with c.post("/review/login", data=form, allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/review/login?failed=1")
            assert COOKIE not in r.cookies


async def test_a_revoked_token_is_refused_at_once(api: ApiGate) -> None:
    await TokenStore(api.gate.deps.database.pool).remove("the-service", "test")
    async with api.client() as c, c.post("/api/v1/match", json=MATCH) as r:
        assert r.status == 401


async def test_nothing_of_the_api_is_on_the_public_listener(api: ApiGate) -> None:
    """The public listener serves only the PDS's routes: /api/ there is the PDS's business, passed on
    untouched — no hash, no verdict, no audit row, whatever the token."""
    headers = {"Authorization": f"Bearer {api.tokens[Role.SERVICE]}"}
    async with aiohttp.ClientSession(base_url=api.gate.url, headers=headers) as c:
        for method, path in (
            ("POST", "/api/v1/hash"),
            ("POST", "/api/v1/match"),
            ("POST", "/api/v1/scan"),
            ("GET", "/api/v1/decisions"),
            ("GET", "/api/v1/openapi.json"),
        ):
            async with c.request(method, path, data=PHOTO) as r:
                assert r.status == 200
                relayed = await r.json()
            assert relayed["path"] == path  # the stand-in PDS's own answer
            assert api.upstream.seen[-1].raw_path == path and api.upstream.seen[-1].method == method
    assert await api.audit() == []


async def test_with_admin_listen_the_api_is_on_that_listener_only(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], fresh_dsn: str
) -> None:
    """GATE_ADMIN_LISTEN gives the API (with the review site) its own listener: the metrics listener, which
    a Prometheus on another host may reach, then serves none of it."""
    api = await api_gate(start_gate, upstream, fresh_dsn, banks=banks(), GATE_ADMIN_LISTEN="127.0.0.1:0")
    assert api.gate.review is not None and api.url != api.gate.admin_url
    async with api.client() as c, c.post("/api/v1/match", json=MATCH) as r:
        assert r.status == 200
    headers = {"Authorization": f"Bearer {api.tokens[Role.SERVICE]}"}
    async with aiohttp.ClientSession(base_url=api.gate.admin_url, headers=headers) as c:
        for method, path in (("POST", "/api/v1/match"), ("GET", "/api/v1/openapi.json")):
            async with c.request(method, path, json=MATCH) as r:
                assert r.status == 404, path
    assert [a["action"] for a in await api.audit()] == ["api_match"]


async def test_each_token_has_its_own_rate(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], fresh_dsn: str
) -> None:
    api = await api_gate(
        start_gate, upstream, fresh_dsn, banks=banks(), GATE_API_RATE="0.1", GATE_API_BURST="2"
    )
    async with api.client() as c:
        statuses = []
        for _ in range(3):
            async with c.post("/api/v1/match", json=MATCH) as r:
                statuses.append(r.status)
                answer, retry = await r.json(), r.headers.get("Retry-After")
    assert statuses == [200, 200, 429]
    assert answer["error"] == "RateLimitExceeded" and retry is not None and 1 <= int(retry) <= 10
    async with api.client(role=Role.ADMIN) as c, c.post("/api/v1/match", json=MATCH) as r:
        assert r.status == 200  # another token's rate is its own


async def test_bodies_have_the_upload_limit(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], fresh_dsn: str
) -> None:
    api = await api_gate(start_gate, upstream, fresh_dsn, banks=banks(), GATE_MAX_UPLOAD_BYTES="1000")
    async with api.client() as c:
        async with c.post("/api/v1/hash", data=PHOTO) as r:
            assert (r.status, (await r.json())["error"]) == (413, "PayloadTooLarge")
        async with c.post("/api/v1/hash", json={"data": base64.b64encode(b"x" * 1001).decode()}) as r:
            assert (r.status, (await r.json())["error"]) == (413, "PayloadTooLarge")
        async with c.post("/api/v1/hash", json={"data": base64.b64encode(b"x" * 1000).decode()}) as r:
            assert r.status == 200
        async with c.post("/api/v1/scan", data=b"x" * 1001) as r:
            assert (r.status, (await r.json())["error"]) == (413, "PayloadTooLarge")
        # A stored blob is fetched under the same limit: the PDS may hold larger ones than the gate takes.
        api.upstream.blobs = {(DID, cid_of(b"x" * 1001)): b"x" * 1001}
        async with c.post("/api/v1/scan", json={"did": DID, "cid": cid_of(b"x" * 1001)}) as r:
            assert (r.status, (await r.json())["error"]) == (413, "PayloadTooLarge")
    # Only the call that was answered is in the audit log: nothing over the limit was judged.
    assert [(a["actor"], a["action"]) for a in await api.audit()] == [("the-service", "api_hash")]


@pytest.mark.parametrize("ask", ["hash-bytes", "scan-stored-blob"])
async def test_uploads_and_the_api_share_one_memory_budget(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], fresh_dsn: str, ask: str
) -> None:
    """Bytes sent to the API, and a stored blob fetched for it, are reserved from the uploads' budget."""
    limit = 100_000
    api = await api_gate(
        start_gate,
        upstream,
        fresh_dsn,
        banks=banks(),
        GATE_MAX_UPLOAD_BYTES=str(limit),
        GATE_MEMORY_BUDGET_BYTES=str(2 * limit),  # the least it may be: two copies of the largest body
    )
    blob = b"\1" * 60_000
    api.upstream.blobs = {(DID, cid_of(blob)): blob}

    def call(c: aiohttp.ClientSession) -> Any:
        if ask == "hash-bytes":
            return c.post("/api/v1/hash", data=blob)
        return c.post("/api/v1/scan", json={"did": DID, "cid": cid_of(blob)})

    more = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"\0" * 90_000
        await more.wait()
        yield b"\0" * 10_000

    headers = {"Authorization": ALICE_BEARER, "Content-Length": str(limit), "Content-Type": "image/png"}
    async with aiohttp.ClientSession(base_url=api.gate.url) as public:
        upload = asyncio.create_task(public.post(UPLOAD_PATH, data=stalled(), headers=headers))
        # The upload holds 90 000 bytes of the budget: the call's 60 000 fit beside them, its hashing
        # worker's copy of them does not.
        for _ in range(200):
            if api.gate.deps.budget.used >= 90_000:
                break
            await asyncio.sleep(0.05)
        endpoint = "/api/v1/hash" if ask == "hash-bytes" else "/api/v1/scan"
        refused = {"endpoint": endpoint, "answer": "Overloaded"}
        before = await sample(api.gate.admin_url, "upload_gate_api_requests_total", **refused)
        async with api.client() as c, call(c) as r:
            assert r.status == 503
            assert (await r.json())["error"] == "Overloaded" and r.headers["Retry-After"]
        # Counted as the API counts its errors; nothing was judged, so nothing is audited.
        assert await sample(api.gate.admin_url, "upload_gate_api_requests_total", **refused) == before + 1
        assert [a["action"] for a in await api.audit()] == []
        more.set()
        async with await upload as r:
            assert r.status == 200  # the upload itself went on
    async with api.client() as c, call(c) as r:
        assert r.status == 200  # the budget is given back
