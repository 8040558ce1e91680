"""The review API over a real Postgres and real servers: blurred previews, audited reveals, release to
the allowlist, confirm with and without a verified DID, the takedown cap, roles, and the audit trail."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image

from gate.admin.auth import COOKIE
from gate.admin.review_api import BODY_BYTES
from gate.notify.webhook import SIGNATURE_HEADER, verify
from tests.integration.admin.conftest import (
    ADMIN_PASSWORD,
    TAKEDOWN,
    VERIFIED_DID,
    WEBHOOK_SECRET,
    ReviewEnv,
    review_env,
)
from tests.integration.notify.test_webhook import wait_for
from tests.support import images

API = "/admin/api/items"


async def test_queue_lists_held_items_with_reason_and_matches(env: ReviewEnv, photo: bytes) -> None:
    item_id = await env.hold(photo)
    async with env.client(env.reviewer) as c:
        async with c.get(API) as r:
            assert r.status == 200
            [item] = (await r.json())["items"]
    assert item["decision_id"] == item_id
    assert (item["state"], item["rule"], item["matches"][0]["bank"]) == ("held", "hold-exact", "review")
    assert "ciphertext" not in json.dumps(item)
    assert ("rita", "list", None) in await env.audit()


async def test_preview_is_a_small_blurred_greyscale_derivative(env: ReviewEnv, photo: bytes) -> None:
    item_id = await env.hold(photo)
    async with env.client(env.reviewer) as c:
        async with c.get(f"{API}/{item_id}/preview") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "image/jpeg"
            assert r.headers["Cache-Control"].startswith("no-store")
            jpeg = await r.read()
    im = Image.open(io.BytesIO(jpeg))
    assert im.mode == "L" and max(im.size) <= 160
    assert jpeg != photo and len(jpeg) < len(photo) // 4
    # Blurred: almost no high-frequency energy left, unlike the same-size sharp thumbnail.
    sharp = Image.open(io.BytesIO(photo)).convert("L")
    sharp.thumbnail(im.size)
    assert _edge_energy(im) < _edge_energy(sharp) / 4
    assert ("rita", "preview", item_id) in await env.audit()


def _edge_energy(im: Image.Image) -> float:
    px = np.asarray(im, dtype=np.float64)
    return float(np.abs(np.diff(px, axis=1)).mean() + np.abs(np.diff(px, axis=0)).mean())


async def test_reveal_is_audited_time_limited_and_personal(env: ReviewEnv, photo: bytes) -> None:
    item_id = await env.hold(photo)
    async with env.client(env.reviewer) as c:
        async with c.post(f"{API}/{item_id}/reveal") as r:
            assert r.status == 200
            grant = await r.json()
        assert grant["expires"] <= datetime.now(UTC).timestamp() + 31
        async with c.get(grant["url"]) as r:
            assert r.status == 200
            assert await r.read() == photo
            assert r.headers["Cache-Control"].startswith("no-store")
    async with env.client(env.admin) as other:  # the same link, someone else
        async with other.get(grant["url"]) as r:
            assert r.status == 403
    async with env.client(env.reviewer) as c:
        async with c.get(f"{API}/{item_id}/original?t=1.deadbeef") as r:  # expired and forged
            assert r.status == 403
    trail = await env.audit()
    for entry in [
        ("rita", "reveal_granted"),
        ("rita", "reveal"),
        ("rita", "viewed"),
        ("adam", "reveal_denied"),
    ]:
        assert (*entry, item_id) in trail
    item = await env.store.items.get(item_id)
    assert item is not None and item.human_viewed


async def test_release_allowlists_the_hash_and_deletes_the_evidence(env: ReviewEnv, photo: bytes) -> None:
    item_id = await env.hold(photo)
    async with env.client(env.reviewer) as c:
        async with c.post(f"{API}/{item_id}/release") as r:
            assert r.status == 200
            assert (await r.json())["item"]["state"] == "released"
        async with c.get(f"{API}/{item_id}/preview") as r:
            assert r.status == 404
        async with c.post(f"{API}/{item_id}/release") as r:  # twice: refused, nothing changes
            assert r.status == 409
    sha = hashlib.sha256(photo).hexdigest()
    [row] = await env.review.allowlist.rows()
    assert (row.sha256, row.bank, row.decision_id, row.added_by) == (sha, "allowlist", item_id, "rita")
    assert sha in env.review.allowlist  # in force in this process already
    assert "sha256," not in (env.banks_dir / "allowlist.csv").read_text()  # the bank files are not written
    item = await env.store.items.get(item_id)
    assert item is not None and not item.has_bytes and item.state.value == "released"
    await wait_for(lambda: any(json.loads(h.body)["type"] == "review.released" for h in env.hooks.got))
    [hook] = [h for h in env.hooks.got if json.loads(h.body)["type"] == "review.released"]
    assert verify(WEBHOOK_SECRET, hook.headers[SIGNATURE_HEADER], hook.body)
    assert json.loads(hook.body)["data"] == {
        "decision_id": item_id, "actor": "rita", "sha256": sha, "cid": item.cid, "bank": "allowlist"
    }  # fmt: skip
    assert base64.b64encode(photo[:48]) not in hook.body


async def test_confirm_with_a_verified_did_takes_the_account_down(env: ReviewEnv, photo: bytes) -> None:
    item_id = await env.hold(photo, verified=True)
    async with env.client(env.admin) as c:
        async with c.post(f"{API}/{item_id}/confirm", json={"takedown": True}) as r:
            assert r.status == 200
            answer = await r.json()
    assert (answer["item"]["state"], answer["takedown"]) == ("confirmed", "applied")
    [call] = env.pds.on(TAKEDOWN)
    expected_auth = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    assert call.headers["Authorization"] == expected_auth
    body = json.loads(call.body)
    assert body["subject"] == {"$type": "com.atproto.admin.defs#repoRef", "did": VERIFIED_DID}
    assert body["takedown"]["applied"] is True
    trail = await env.audit()
    assert ("adam", "confirmed", item_id) in trail and ("adam", "takedown", item_id) in trail


async def test_confirm_with_a_claimed_did_refuses_the_account_action(env: ReviewEnv, photo: bytes) -> None:
    item_id = await env.hold(photo, verified=False)
    async with env.client(env.admin) as c:
        async with c.post(f"{API}/{item_id}/confirm", json={"takedown": True}) as r:
            assert r.status == 200
            answer = await r.json()
    assert (answer["item"]["state"], answer["takedown"]) == ("confirmed", "unverified")
    assert env.pds.got == []
    assert ("adam", "takedown_refused", item_id) in await env.audit()


async def test_a_reviewer_cannot_take_accounts_down(env: ReviewEnv, photo: bytes) -> None:
    item_id = await env.hold(photo, verified=True)
    async with env.client(env.reviewer) as c:
        async with c.post(f"{API}/{item_id}/confirm", json={"takedown": True}) as r:
            assert (r.status, await r.json()) == (
                403,
                {"error": "Forbidden", "message": "this needs the admin role"},
            )
    item = await env.store.items.get(item_id)
    assert item is not None and item.state.value == "held"
    assert env.pds.got == []


async def test_a_malformed_body_is_an_xrpc_error_and_changes_nothing(env: ReviewEnv, photo: bytes) -> None:
    """Bodies are checked as the OpenAPI document says: a JSON object, only the named fields, each of its
    type; anything else is a 400 in the API's shape, before the item is touched."""
    item_id = await env.hold(photo, verified=True)
    cases = [
        ("confirm", b"[]"),
        ("confirm", b"{not json"),
        ("confirm", json.dumps({"takedown": "yes"}).encode()),
        ("confirm", json.dumps({"takedwon": True}).encode()),
        ("reported", json.dumps({"report_id": 17}).encode()),
        ("reported", json.dumps({"report_id": "a\u0000b"}).encode()),
        ("legal-hold", json.dumps({"reason": ["x"]}).encode()),
    ]
    async with env.client(env.admin) as c:
        for action, body in cases:
            headers = {"Content-Type": "application/json"}
            async with c.post(f"{API}/{item_id}/{action}", data=body, headers=headers) as r:
                assert r.status == 400, (action, body)
                answer = await r.json()
                assert answer["error"] == "InvalidRequest" and answer["message"], (action, body)
        async with c.get("/admin/api/audit") as r:
            assert (r.status, (await r.json())["error"]) == (400, "InvalidRequest")
    item = await env.store.items.get(item_id)
    assert item is not None and (item.state.value, item.legal_hold, item.report_id) == ("held", False, None)
    assert env.pds.got == []


async def test_every_refusal_under_admin_api_is_an_xrpc_error(env: ReviewEnv, photo: bytes) -> None:
    """The router's misses and wrong methods, an oversized body and a cookie POST without the page's form
    token are JSON errors as the OpenAPI document says, not aiohttp's text pages."""
    item_id = await env.hold(photo)
    async with env.client(env.admin) as c:
        async with c.get("/admin/api/nothing-here") as r:
            assert (r.status, (await r.json())["error"]) == (404, "NotFound")
        async with c.delete(API) as r:
            assert (r.status, (await r.json())["error"]) == (405, "MethodNotAllowed")
            assert "GET" in r.headers["Allow"].split(", ")
        big = json.dumps({"reason": "x" * BODY_BYTES}).encode()
        headers = {"Content-Type": "application/json"}
        async with c.post(f"{API}/{item_id}/legal-hold", data=big, headers=headers) as r:
            assert (r.status, (await r.json())["error"]) == (413, "PayloadTooLarge")
    # The page's login cookie, without the form token every cookie POST needs (gate.admin.auth).
    async with (
        aiohttp.ClientSession(base_url=env.url, cookies={COOKIE: env.admin}) as c,
        c.post(f"{API}/{item_id}/release") as r,
    ):
        assert (r.status, (await r.json())["error"]) == (403, "Forbidden")
    item = await env.store.items.get(item_id)
    assert item is not None and (item.state.value, item.legal_hold) == ("held", False)


async def test_the_daily_cap_stops_the_next_takedown(tmp_path: Path, fresh_dsn: str) -> None:
    async with review_env(tmp_path, fresh_dsn, daily_cap=2) as env:
        ids = [await env.hold(images.noise_png(seed), verified=True) for seed in (1, 2, 3)]
        outcomes = []
        async with env.client(env.admin) as c:
            for item_id in ids:
                async with c.post(f"{API}/{item_id}/confirm", json={"takedown": True}) as r:
                    outcomes.append((await r.json())["takedown"])
        assert outcomes == ["applied", "applied", "capped"]
        assert len(env.pds.on(TAKEDOWN)) == 2
        assert ("adam", "takedown_capped", ids[2]) in await env.audit()
        assert env.review.takedowns is not None
        assert await env.review.takedowns.used_today() == 2


async def test_a_failed_takedown_gives_its_slot_back(tmp_path: Path, fresh_dsn: str) -> None:
    async with review_env(tmp_path, fresh_dsn, daily_cap=1) as env:
        first, second = [await env.hold(images.noise_png(seed), verified=True) for seed in (4, 5)]
        env.pds.statuses = [500, 200]
        async with env.client(env.admin) as c:
            async with c.post(f"{API}/{first}/confirm", json={"takedown": True}) as r:
                assert (await r.json())["takedown"] == "failed"
            async with c.post(f"{API}/{second}/confirm", json={"takedown": True}) as r:
                assert (await r.json())["takedown"] == "applied"


async def test_mark_reported_starts_the_one_year_clock(env: ReviewEnv, photo: bytes) -> None:
    item_id = await env.hold(photo)
    async with env.client(env.reviewer) as c:
        async with c.post(f"{API}/{item_id}/reported", json={"report_id": ""}) as r:
            assert r.status == 409
        async with c.post(f"{API}/{item_id}/reported", json={"report_id": "CT-123456"}) as r:
            assert r.status == 200
            item = (await r.json())["item"]
    assert (item["state"], item["report_id"]) == ("reported", "CT-123456")
    expires = datetime.fromisoformat(item["expires_at"])
    assert expires >= datetime.now(UTC) + timedelta(days=365)
    assert ("rita", "reported", item_id) in await env.audit()


async def test_no_token_or_a_wrong_token_sees_nothing(env: ReviewEnv, photo: bytes) -> None:
    item_id = await env.hold(photo)
    for token in (None, "ugt_not-a-real-token", env.reviewer + "x"):
        async with env.client(token) as c:
            for method, path in [
                ("GET", API),
                ("GET", f"{API}/{item_id}/preview"),
                ("POST", f"{API}/{item_id}/release"),
            ]:
                async with c.request(method, path) as r:
                    assert r.status == 401
    assert await env.audit() == []  # nothing was accessed
    item = await env.store.items.get(item_id)
    assert item is not None and item.state.value == "held"


async def test_every_access_lands_in_audit(env: ReviewEnv, photo: bytes) -> None:
    item_id = await env.hold(photo)
    async with env.client(env.admin) as c:
        async with c.get(API) as r:
            assert r.status == 200
        async with c.get(f"{API}/{item_id}") as r:
            assert r.status == 200
        async with c.get(f"{API}/{item_id}/preview") as r:
            assert r.status == 200
        async with c.post(f"{API}/{item_id}/reveal") as r:
            url = (await r.json())["url"]
        async with c.get(url) as r:
            assert r.status == 200
        async with c.post(f"{API}/{item_id}/confirm", json={}) as r:
            assert r.status == 200
        async with c.get("/admin/api/audit", params={"subject": item_id}) as r:
            assert r.status == 200
    actions = [a for actor, a, _ in await env.audit() if actor == "adam"]
    assert actions == [
        "list", "item", "preview", "reveal_granted", "reveal", "viewed", "confirmed", "audit_read"
    ]  # fmt: skip
