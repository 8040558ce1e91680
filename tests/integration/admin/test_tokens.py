"""Reviewer/admin tokens in Postgres: hashes only, every replica sees a change at once, the CLI prints a
token once, the signing key is one for all, and an old tokens file is imported once by a starting gate."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import aiohttp
import asyncpg

from gate.admin.review_api import ReviewSite
from gate.admin.review_app import create_review_app
from gate.admin.signing import Signer, shared_key
from gate.admin.tokens import Principal, Role, TokenError, TokenStore, token_hash
from gate.store.pool import Pool
from tests.integration.admin.conftest import ReviewEnv
from tests.integration.conftest import GateFactory
from tests.support.boot import gate_command
from tests.support.postgres import migrated
from tests.support.serving import serving


async def test_tokens_are_hashes_shared_by_every_process(fresh_dsn: str) -> None:
    await migrated(fresh_dsn)
    here, there = TokenStore(Pool(fresh_dsn)), TokenStore(Pool(fresh_dsn))
    try:
        token = await here.add("alice", Role.REVIEWER, "olga")
        assert await there.authenticate(token) == Principal("alice", Role.REVIEWER)  # another replica
        assert await there.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert await there.authenticate("") is None
        conn = await asyncpg.connect(fresh_dsn)
        try:
            stored = await conn.fetch("SELECT * FROM review_tokens")
            actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit ORDER BY id")]
        finally:
            await conn.close()
        assert token not in repr([dict(r) for r in stored])
        assert [r["token_sha256"] for r in stored] == [token_hash(token)]
        try:
            await here.add("alice", Role.ADMIN, "olga")
            raise AssertionError("a second alice was added")
        except TokenError as exc:
            assert "exists" in str(exc)
        assert await there.remove("alice", "olga")
        assert await here.authenticate(token) is None  # revoked everywhere at once
        assert not await here.remove("alice", "olga")
        assert actions == ["token_added"]
    finally:
        await here.db.close()
        await there.db.close()


async def test_one_signing_key_for_every_replica_kept_across_restarts(fresh_dsn: str) -> None:
    await migrated(fresh_dsn)
    first, second = TokenStore(Pool(fresh_dsn)), TokenStore(Pool(fresh_dsn))
    try:
        a, b = Signer(load=functools.partial(_key, first)), Signer(load=functools.partial(_key, second))
        await a.ready()
        await b.ready()
        link, _ = a.reveal("rita", "item-1", 60)
        assert b.check_reveal(link, "rita", "item-1")
        assert b.check_csrf("login-token", a.csrf("login-token"))
    finally:
        await first.db.close()
        await second.db.close()
    later = TokenStore(Pool(fresh_dsn))  # a restarted gate
    try:
        c = Signer(load=functools.partial(_key, later))
        await c.ready()
        assert c.check_reveal(link, "rita", "item-1")
    finally:
        await later.db.close()


async def _key(store: TokenStore) -> bytes:
    return await shared_key(store.db)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return gate_command("admin", "token", *args, env=env)


async def test_cli_prints_the_token_once(fresh_dsn: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")} | {
        "DATABASE_URL": fresh_dsn,
        "GATE_DATA_DIR": str(tmp_path / "var"),
    }
    done = cli(env, "add", "carol", "--role", "reviewer")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("ugt_")
    store = TokenStore(Pool(fresh_dsn))
    try:
        assert await store.authenticate(token) == Principal("carol", Role.REVIEWER)
    finally:
        await store.db.close()
    listed = cli(env, "list")
    assert listed.stdout == "carol\treviewer\n"
    assert token not in listed.stdout + listed.stderr
    assert cli(env, "add", "carol").returncode == 1
    assert cli(env, "remove", "carol").returncode == 0
    assert cli(env, "remove", "carol").returncode == 1
    assert cli(env, "list").stdout.startswith("no tokens; create one with")


async def test_a_starting_gate_imports_an_old_tokens_file_once(
    start_gate: GateFactory, tmp_path: Path
) -> None:
    token = "ugt_" + "x" * 43
    old = tmp_path / "admin-tokens"
    old.write_text(f"# from before\nrita reviewer sha256:{token_hash(token)} 2026-01-01T00:00:00Z\n")
    gate = await start_gate(GATE_ADMIN_TOKENS=str(old))
    assert not old.exists() and (tmp_path / "admin-tokens.imported").exists()
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url=gate.admin_url, headers=headers) as admin:
        async with admin.get("/admin/api/items") as r:
            assert r.status == 200


async def test_nobody_gets_in_while_postgres_cannot_say_who_a_token_is(env: ReviewEnv) -> None:
    """The tokens' database unreachable: 503 with an XRPC-shaped error, never a 500, never a way in."""
    dead = TokenStore(Pool("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1))
    app = create_review_app(ReviewSite(env.review, dead))
    async with serving(app) as url, aiohttp.ClientSession(base_url=url) as s:
        async with s.get("/admin/api/items", headers={"Authorization": f"Bearer {env.admin}"}) as r:
            assert r.status == 503
            assert (await r.json())["error"] == "Unavailable"
        async with s.post("/review/login", data={"token": env.admin}, allow_redirects=False) as r:
            assert r.status == 503 and "Set-Cookie" not in r.headers
    await dead.db.close()
