"""The review site on a real port over a real Postgres, with a stand-in PDS admin endpoint and a webhook
receiver (both real aiohttp servers on real ports)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from yarl import URL

from gate.admin.review import Review
from gate.admin.review_api import ReviewSite
from gate.admin.review_app import create_review_app
from gate.admin.signing import Signer, shared_key
from gate.admin.tokens import Role, TokenStore
from gate.matching.local import LocalBanks
from gate.notify.webhook import Webhook
from gate.pds_admin import PdsAdmin
from gate.policy.reload import PolicyHolder
from gate.quarantine.allowlist import Allowlist
from gate.quarantine.takedowns import Takedowns
from gate.store.evidence import Evidence
from gate.store.pool import Pool
from gate.store.retention import Retention
from gate.types import Uploader, Verdict
from tests.integration.quarantine.conftest import DID, judged, make_keyring
from tests.support import images
from tests.support.receiver import Receiver, receiver
from tests.support.serving import serving

ADMIN_PASSWORD = "pds-admin-pw"
WEBHOOK_SECRET = "hook-secret"
VERIFIED_DID = "did:plc:verifieduploader0000000"
POLICY = """
on_unhashable = "quarantine"
on_low_quality = "forward"
on_unscannable = "forward"
on_matcher_error = "reject"
on_log_failure = "forward"
allowlist_banks = ["allowlist"]
"""
TAKEDOWN = "/xrpc/com.atproto.admin.updateSubjectStatus"


@dataclass
class ReviewEnv:
    url: str
    store: Evidence
    dsn: str
    banks_dir: Path
    pds: Receiver
    hooks: Receiver
    reviewer: str
    admin: str
    review: Review

    async def hold(
        self, body: bytes, *, verified: bool = False, verdict: Verdict = Verdict.QUARANTINE
    ) -> str:
        """A held upload, as the pipeline stores it (its uploader verified by the PDS); ``verified=False``
        makes an item as gates before verification existed stored it: a claimed DID only. Returns its
        decision id (canonical UUID)."""
        record = dataclasses.replace(
            judged(body, verdict), uploader=Uploader(VERIFIED_DID, "access_jwt", "pds", VERIFIED_DID)
        )
        await self.store.vault.keep(record, body, Retention())
        item = await self.store.items.get(record.id)
        assert item is not None
        if not verified:
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(
                    "UPDATE evidence SET did = $2, verified_did = NULL, verified_how = NULL, verified_at = NULL"
                    " WHERE decision_id = $1",
                    uuid.UUID(item.decision_id),
                    DID,
                )
            finally:
                await conn.close()
        return item.decision_id

    async def audit(self) -> list[tuple[str, str, str | None]]:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            # From the review site's use on: the set-up's own rows (the two tokens made) are not it.
            rows = await conn.fetch(
                "SELECT actor, action, subject FROM audit WHERE action NOT IN ('token_added') ORDER BY id"
            )
        finally:
            await conn.close()
        return [(r["actor"], r["action"], r["subject"]) for r in rows]

    def client(self, token: str | None) -> aiohttp.ClientSession:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return aiohttp.ClientSession(base_url=self.url, headers=headers)


async def signing_key(tokens: TokenStore) -> bytes:
    return await shared_key(tokens.db)


@contextlib.asynccontextmanager
async def review_env(tmp_path: Path, dsn: str, *, daily_cap: int = 5) -> AsyncIterator[ReviewEnv]:
    banks_dir = tmp_path / "banks"
    banks_dir.mkdir()
    (banks_dir / "allowlist.csv").write_text("# reviewed false positives\n")
    (banks_dir / "blocklist.csv").write_text("")
    (tmp_path / "policy.toml").write_text(POLICY)
    banks = LocalBanks(banks_dir)
    banks.load()
    policy = PolicyHolder(tmp_path / "policy.toml", lambda: {"local": banks.names()}, [])
    await policy.load_initial()
    db = Pool(dsn)
    store = Evidence.on(db, make_keyring())
    await db.get()  # (migrates)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(db.close)
        tokens = TokenStore(db)
        reviewer, admin = (
            await tokens.add("rita", Role.REVIEWER, "t"),
            await tokens.add("adam", Role.ADMIN, "t"),
        )
        pds = await stack.enter_async_context(receiver())
        hooks = await stack.enter_async_context(receiver())
        webhook = Webhook(URL(hooks.url), WEBHOOK_SECRET, backoff=0.01)
        await webhook.start()
        stack.push_async_callback(webhook.close)
        takedowns = Takedowns(db, PdsAdmin(URL(pds.url), ADMIN_PASSWORD), daily_cap)
        allowlist = Allowlist(db, policy)
        await allowlist.start()
        signer = Signer(load=functools.partial(signing_key, tokens))
        review = Review(store, allowlist, takedowns, webhook, reveal_seconds=30, signer=signer)
        url = await stack.enter_async_context(serving(create_review_app(ReviewSite(review, tokens))))
        yield ReviewEnv(url, store, dsn, banks_dir, pds, hooks, reviewer, admin, review)


@pytest.fixture
async def env(tmp_path: Path, fresh_dsn: str) -> AsyncIterator[ReviewEnv]:
    async with review_env(tmp_path, fresh_dsn) as e:
        yield e


@pytest.fixture
def photo() -> bytes:
    return images.jpeg()
