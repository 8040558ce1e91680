"""Retention through the running gate's admin API: ``[evidence] reported_days`` sets how long reported
evidence is kept (re-read on policy reload), and admins place and lift legal holds — audited, refused to
reviewers, and respected by release and purge."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from gate.admin.tokens import Role, TokenStore
from gate.quarantine.keys import Keyring
from gate.store.evidence import Evidence
from gate.store.pool import Pool
from gate.store.purge import purge
from tests.integration.conftest import POLICY, GateFactory
from tests.support.boot import TEST_EVIDENCE_KEY

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
ITEMS = "/admin/api/items"


def policy(reported_days: int) -> str:
    return POLICY + f"\n[evidence]\nreported_days = {reported_days}\n"


def unhashable(n: int) -> bytes:
    """A PNG signature and nothing decodable: the test policy quarantines it (on_unhashable)."""
    return b"\x89PNG\r\n\x1a\n" + bytes([n]) * 64


async def held(gate_url: str, admin: aiohttp.ClientSession, body: bytes) -> str:
    headers = {"Authorization": "Bearer t", "Content-Type": "image/png"}
    async with aiohttp.ClientSession() as s, s.post(gate_url + UPLOAD, data=body, headers=headers) as r:
        assert r.status == 400 and (await r.json())["error"] == "BlobHeld"
    async with admin.get(ITEMS) as r:
        items = (await r.json())["items"]
    [item] = [i for i in items if i["sha256"] == hashlib.sha256(body).hexdigest()]
    return str(item["decision_id"])


async def post(
    session: aiohttp.ClientSession, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    async with session.post(path, json=body or {}) as r:
        text = await r.text()
        return r.status, json.loads(text) if r.content_type == "application/json" else text


async def policy_in_force(session: aiohttp.ClientSession) -> str:
    async with session.get("/readyz") as r:
        return str((await r.json())["checks"]["policy"]["detail"])


def days(item: dict[str, Any]) -> timedelta:
    return datetime.fromisoformat(item["expires_at"]) - datetime.fromisoformat(item["reported_at"])


async def test_reported_days_and_legal_hold_through_the_gate(
    start_gate: GateFactory, tmp_path: Path, fresh_dsn: str
) -> None:
    gate = await start_gate(policy=policy(400))
    tokens = TokenStore(Pool(fresh_dsn))  # as `upload-gate admin token add` does, in the gate's database
    try:
        rita, adam = await tokens.add("rita", Role.REVIEWER, "t"), await tokens.add("adam", Role.ADMIN, "t")
    finally:
        await tokens.db.close()
    reviewer = aiohttp.ClientSession(base_url=gate.admin_url, headers={"Authorization": f"Bearer {rita}"})
    admin = aiohttp.ClientSession(base_url=gate.admin_url, headers={"Authorization": f"Bearer {adam}"})
    store = Evidence.on(Pool(fresh_dsn), Keyring.from_env(TEST_EVIDENCE_KEY))
    try:
        first = await held(gate.url, reviewer, unhashable(1))

        # Only admins hold, and a hold says what it is for.
        status, _ = await post(reviewer, f"{ITEMS}/{first}/legal-hold", {"reason": "PR-17"})
        assert status == 403
        status, answer = await post(admin, f"{ITEMS}/{first}/legal-hold", {"reason": " "})
        assert (status, answer["error"]) == (409, "InvalidTransition") and "reason" in answer["message"]
        status, answer = await post(
            admin, f"{ITEMS}/{first}/legal-hold", {"reason": "preservation request PR-17"}
        )
        assert status == 200
        item = answer["item"]
        assert (item["legal_hold"], item["legal_hold_reason"], item["legal_hold_by"]) == (
            True,
            "preservation request PR-17",
            "adam",
        )

        # Held: no release; a report keeps the hold and gets the policy's 400 days, not the legal minimum.
        status, answer = await post(reviewer, f"{ITEMS}/{first}/release")
        assert status == 409 and "legal hold" in answer["message"]
        status, answer = await post(reviewer, f"{ITEMS}/{first}/reported", {"report_id": "CT-1"})
        assert status == 200 and answer["item"]["legal_hold"] is True
        assert days(answer["item"]) == timedelta(days=400)

        # No deadline outlasts a hold; once lifted, the deadline applies again.
        later = datetime.now(UTC) + timedelta(days=401)
        assert await purge(store.db, later) == []
        status, _ = await post(reviewer, f"{ITEMS}/{first}/legal-hold/lift")
        assert status == 403
        status, answer = await post(admin, f"{ITEMS}/{first}/legal-hold/lift", {"reason": "matter closed"})
        assert status == 200 and answer["item"]["legal_hold"] is False
        assert [p.decision_id for p in await purge(store.db, later)] == [first]

        # The policy is re-read: a report after the reload gets the new reported_days.
        before = await policy_in_force(admin)
        (tmp_path / "policy.toml").write_text(policy(500))
        for _ in range(100):
            if await policy_in_force(admin) != before:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the changed policy was never loaded")
        second = await held(gate.url, reviewer, unhashable(2))
        status, answer = await post(reviewer, f"{ITEMS}/{second}/reported", {"report_id": "CT-2"})
        assert status == 200 and days(answer["item"]) == timedelta(days=500)
    finally:
        await reviewer.close()
        await admin.close()
        await store.db.close()

    conn = await asyncpg.connect(fresh_dsn)
    try:
        trail = await conn.fetch(
            "SELECT actor, action, detail FROM audit WHERE subject = $1 ORDER BY id", first
        )
    finally:
        await conn.close()
    actions = [(r["actor"], r["action"]) for r in trail]
    assert ("adam", "legal_hold") in actions and ("adam", "legal_hold_lifted") in actions
    assert ("gate", "purge") in actions
    assert actions.index(("adam", "legal_hold_lifted")) < actions.index(("gate", "purge"))
