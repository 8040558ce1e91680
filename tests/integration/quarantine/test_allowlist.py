"""Released hashes in Postgres, matched as rows of the policy's allowlist bank: what ``evaluate`` sees,
another replica's view, a policy that drops the bank, and ``upload-gate allowlist list|remove``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest

from gate.matching.local import LocalBanks
from gate.policy.evaluate import evaluate
from gate.policy.reload import PolicyHolder
from gate.quarantine.allowlist import Allowlist, NoAllowlistBank
from gate.signals import SignalType
from gate.store.embedded import EmbeddedPostgres
from gate.store.pool import Pool, StoreUnavailable
from gate.types import Hashes, MatchResult, Verdict
from tests.integration.admin.conftest import POLICY
from tests.support.boot import gate_command
from tests.support.postgres import migrated, server_dir

# Every local bank's exact hashes: a release must never turn into a hit this rule could select.
BLOCK_ANY_LOCAL = (
    '\n[[rules]]\nname = "any-local"\nsource = "local"\nsignal_types = ["sha256"]\naction = "reject"\n'
)


async def holder(tmp_path: Path, text: str) -> PolicyHolder:
    banks_dir = tmp_path / "banks"
    banks_dir.mkdir(exist_ok=True)
    for name in ("allowlist", "blocklist"):
        (banks_dir / f"{name}.csv").write_text("")
    banks = LocalBanks(banks_dir)
    banks.load()
    (tmp_path / "policy.toml").write_text(text)
    policy = PolicyHolder(tmp_path / "policy.toml", lambda: {"local": banks.names()}, [])
    await policy.load_initial()
    return policy


def hashes_of(body: bytes) -> Hashes:
    sha = hashlib.sha256(body).hexdigest()
    return Hashes(
        sha256=sha,
        md5="0" * 32,
        sha1="0" * 40,
        cid="bafkrei" + sha[:52],
        size=len(body),
        media_type="image/jpeg",
    )


async def test_a_release_is_an_exact_allowlist_hit_here_at_once_and_elsewhere_on_refresh(
    tmp_path: Path, fresh_dsn: str
) -> None:
    await migrated(fresh_dsn)
    policy = await holder(tmp_path, POLICY + BLOCK_ANY_LOCAL)
    here, there = Allowlist(Pool(fresh_dsn), policy), Allowlist(Pool(fresh_dsn), policy)
    try:
        await here.start()
        await there.start()
        body = b"a reviewed false positive"
        hashes = hashes_of(body)
        assert await here.match(hashes, policy.plan) == MatchResult()
        version = there.version()

        assert (
            await here.add_sha256(hashes.sha256, "0190aaaa-0000-7000-8000-000000000001", "rita")
            == "allowlist"
        )
        [hit] = (await here.match(hashes, policy.plan)).matches
        assert (hit.source, hit.bank, hit.signal_type, hit.distance) == (
            "local",
            "allowlist",
            SignalType.SHA256,
            None,
        )
        assert "rita" in (hit.label or "")
        decision = evaluate(policy.current, hashes, MatchResult(matches=(hit,)))
        assert (decision.verdict, decision.rule) == (Verdict.FORWARD, "allowlist")

        assert await there.match(hashes, policy.plan) == MatchResult()  # not yet re-read
        assert await there.refresh() is True
        assert await there.match(hashes, policy.plan) != MatchResult()
        assert there.version() != version  # a new verdict-cache key
        # Released twice (two held copies of the same bytes): one row, in force.
        assert await here.add_sha256(hashes.sha256, None, "adam") == "allowlist"
        assert len(await here.rows()) == 1
    finally:
        await here.db.close()
        await there.db.close()


async def test_a_row_counts_only_while_its_bank_is_an_allowlist(tmp_path: Path, fresh_dsn: str) -> None:
    await migrated(fresh_dsn)
    policy = await holder(tmp_path, POLICY + BLOCK_ANY_LOCAL)
    allow = Allowlist(Pool(fresh_dsn), policy)
    try:
        hashes = hashes_of(b"x")
        await allow.add_sha256(hashes.sha256, None, "rita")
        (tmp_path / "policy.toml").write_text(
            POLICY.replace('allowlist_banks = ["allowlist"]', "") + BLOCK_ANY_LOCAL
        )
        assert await policy.reload()
        result = await allow.match(hashes, policy.plan)
        assert result == MatchResult()  # not a hit "any-local" could reject on
        assert evaluate(policy.current, hashes, result).verdict is Verdict.FORWARD
        with pytest.raises(NoAllowlistBank, match="allowlist_banks"):
            await allow.add_sha256(hashes_of(b"y").sha256, None, "rita")
        assert [r.sha256 for r in await allow.rows()] == [hashes.sha256]
    finally:
        await allow.db.close()


async def test_postgres_down_keeps_the_rows_in_force(tmp_path: Path) -> None:
    policy = await holder(tmp_path, POLICY)
    with server_dir() as path:
        server = EmbeddedPostgres(path)
        dsn = await asyncio.to_thread(server.start)
        allow = Allowlist(Pool(dsn), policy)
        try:
            await migrated(dsn)
            hashes = hashes_of(b"kept")
            await allow.add_sha256(hashes.sha256, None, "rita")
            await asyncio.to_thread(server.halt)
            with pytest.raises(StoreUnavailable):
                await allow.refresh()
            assert await allow.match(hashes, policy.plan) != MatchResult()
        finally:
            await allow.db.close()
            await asyncio.to_thread(server.stop)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return gate_command("allowlist", *args, env=env)


async def test_list_and_remove_commands(tmp_path: Path, fresh_dsn: str) -> None:
    await migrated(fresh_dsn)
    policy = await holder(tmp_path, POLICY)
    allow = Allowlist(Pool(fresh_dsn), policy)
    sha = hashlib.sha256(b"listed").hexdigest()
    try:
        await allow.add_sha256(sha, "0190aaaa-0000-7000-8000-000000000002", "rita")
    finally:
        await allow.db.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")} | {
        "DATABASE_URL": fresh_dsn,
        "GATE_DATA_DIR": str(tmp_path / "var"),
    }
    listed = cli(env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["sha256"], row["bank"], row["added_by"]) == (sha, "allowlist", "rita")

    assert cli(env, "remove", "nothex").returncode == 2
    removed = cli(env, "remove", sha.upper(), "--actor", "olga")
    assert removed.returncode == 0 and sha in removed.stdout, removed.stderr
    again = cli(env, "remove", sha)
    assert again.returncode == 1 and "not on the allowlist" in again.stderr
    assert cli(env, "list").stdout == "no released hashes on the allowlist\n"
    assert cli(env, "list", "--json").stdout == ""
    conn = await asyncpg.connect(fresh_dsn)
    try:
        audit = await conn.fetchrow(
            "SELECT actor, action, detail FROM audit WHERE action = 'allowlist_removed'"
        )
    finally:
        await conn.close()
    assert audit is not None
    assert audit["actor"] == "olga" and json.loads(audit["detail"])["sha256"] == sha
