"""``upload-gate migrate | decisions | stats`` run as a user would, checked against rows just written."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gate.cli import main
from gate.record import DecisionRecord
from gate.store.embedded import EmbeddedPostgres
from gate.store.migrate import shipped_migrations
from gate.types import DecisionSource
from tests.support.boot import gate_command
from tests.support.postgres import server_dir

from . import records as R
from .conftest import make_log

ALL_APPLIED = "".join(f"applied {m.version:03d}_{m.name}\n" for m in shipped_migrations())


def run_cli(
    *args: str, dsn: str | None = None, data_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if dsn is not None:
        env["DATABASE_URL"] = dsn
    if data_dir is not None:
        env["GATE_DATA_DIR"] = str(data_dir)
    return gate_command(*args, env=env)


async def _write(dsn: str, spool: Path, records: list[DecisionRecord]) -> None:
    log = make_log(dsn, spool)
    await log.start()
    for record in records:
        log.submit(record)
    await log.close()


@pytest.fixture
async def written(fresh_dsn: str, tmp_path: Path) -> tuple[str, list[DecisionRecord]]:
    records = [R.forward(1), R.reject(2), R.quarantine(3), R.shadow(4), R.unscanned(5)]
    await _write(fresh_dsn, tmp_path / "spool", records)
    return fresh_dsn, records


def _lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:  # the JSON lines
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


async def test_decisions_json_lists_every_row_newest_first(written: tuple[str, list[DecisionRecord]]) -> None:
    dsn, records = written
    rows = _lines(await asyncio.to_thread(run_cli, "decisions", "--json", dsn=dsn))
    assert [r["id"] for r in rows] == [r.id for r in reversed(records)]
    reject = rows[3]
    assert reject["verdict"] == "reject"
    assert reject["rule"] == "csam-pdq"
    assert reject["did"] == "did:plc:bad"
    assert reject["client_ip"] == "2001:db8::5"
    assert reject["sha256"] == f"{2:064x}"
    assert reject["time"] == "2026-11-24T12:00:02.123456+00:00"
    assert [m["bank"] for m in reject["all_matches"]] == ["ncmec", "stopncii"]
    assert reject["media_types"] == ["image/jpeg", "video/mp4"]
    assert reject["frames"] == 3
    assert [(m["frame"], m["variant"]) for m in reject["matches"]] == [(2, "displayed")]
    assert (reject["did_verified"], reject["verified_how"], reject["claimed_did"]) == (
        True,
        "pds",
        "did:plc:bad",
    )
    assert rows[1]["shadow_rule"] == "trial-terror"
    assert rows[1]["shadow_only"] is True


FILTERS = [
    (("--verdict", "reject"), [2]),
    (("--verdict", "forward"), [5, 4, 1]),
    (("--did", "did:plc:bad"), [2]),
    (("--sha256", f"{3:064X}"), [3]),
    (("--cid", "bafkreitest00000004"), [4]),
    (("--rule", "default"), [4, 1]),
    (("--shadow",), [4]),
    (("--since", "2026-11-24T12:00:02", "--until", "2026-11-24T12:00:04"), [3, 2]),
    (("--limit", "1"), [5]),
    (("--verdict", "reject", "--did", "did:plc:user1"), []),
]


def test_decisions_filters(
    written: tuple[str, list[DecisionRecord]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same entry point in-process (a subprocess per filter would only add start-up time)."""
    dsn, records = written
    monkeypatch.setenv("DATABASE_URL", dsn)
    for args, expected in FILTERS:
        assert main(["decisions", "--json", *args]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["id"] for r in rows] == [records[n - 1].id for n in expected], args


async def test_decisions_table(written: tuple[str, list[DecisionRecord]]) -> None:
    dsn, records = written
    result = await asyncio.to_thread(run_cli, "decisions", "--verdict", "quarantine", dsn=dsn)
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == [
        "TIME", "ID", "SOURCE", "VERDICT", "RULE", "SHADOW", "DID", "VERIFIED", "MEDIA_TYPE", "SIZE", "CID"
    ]  # fmt: skip
    assert len(lines) == 1
    assert lines[0].split() == [
        "2026-11-24", "12:00:03", records[2].id, "upload", "quarantine", "on_matcher_error", "-", "-", "-", "image/png",
        "5", "bafkreitest00000003",
    ]  # fmt: skip
    rejected = await asyncio.to_thread(run_cli, "decisions", "--verdict", "reject", dsn=dsn)
    # The verified DID and how, then every type the bytes satisfy.
    assert rejected.stdout.splitlines()[1].split()[7:11] == [
        "did:plc:bad",
        "pds",
        "image/jpeg+video/mp4",
        "(3",
    ]
    none = await asyncio.to_thread(run_cli, "decisions", "--did", "did:plc:nobody", dsn=dsn)
    assert none.stdout == "no decisions match\n"


async def test_decisions_of_one_path(fresh_dsn: str, tmp_path: Path) -> None:
    """Each row says which path judged the bytes; ``--source`` lists one path's."""
    upload, retro = R.forward(1), dataclasses.replace(R.reject(2), source=DecisionSource.RETRO)
    await _write(fresh_dsn, tmp_path / "spool", [upload, retro])
    rows = _lines(await asyncio.to_thread(run_cli, "decisions", "--json", "--source", "retro", dsn=fresh_dsn))
    assert [(r["id"], r["source"]) for r in rows] == [(retro.id, "retro")]
    table = await asyncio.to_thread(run_cli, "decisions", "--source", "upload", dsn=fresh_dsn)
    assert [line.split()[2:4] for line in table.stdout.splitlines()[1:]] == [[upload.id, "upload"]]
    wrong = await asyncio.to_thread(run_cli, "decisions", "--source", "uploads", dsn=fresh_dsn)
    assert wrong.returncode == 2 and "invalid choice: 'uploads'" in wrong.stderr


async def test_stats_counts_and_block_rates(written: tuple[str, list[DecisionRecord]]) -> None:
    dsn, _ = written
    window = ("--since", "2026-11-24T11:59", "--until", "2026-11-24T13:00")
    result = await asyncio.to_thread(run_cli, "stats", "--json", *window, dsn=dsn)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    # The quarantine of a caller the PDS never accepted (3) is left out: it names no account.
    assert (stats["total"], stats["blocked"], stats["block_rate"], stats["unverified"]) == (4, 1, 0.25, 1)
    # Only forwarded rows count as forwarded without a full scan (5; the held 3 is not forwarded).
    assert stats["unscanned_forwards"] == 1
    assert stats["verdicts"] == {"forward": 3, "reject": 1}
    assert {r["rule"]: (r["decisions"], r["blocked"], r["share"]) for r in stats["rules"]} == {
        "default": (2, 0, 0.0),
        "csam-pdq": (1, 1, 0.25),
        "on_matcher_error": (1, 0, 0.0),
    }
    assert {
        (b["source"], b["bank"]): (b["matched"], b["blocked"], b["block_rate"]) for b in stats["banks"]
    } == {
        ("hma", "ncmec"): (1, 1, 1.0),
        ("hma", "stopncii"): (1, 1, 1.0),
        ("local", "tvec"): (1, 0, 0.0),
    }
    assert stats["shadow"] == [{"rule": "trial-terror", "verdict": "reject", "hits": 1, "shadow_only": 1}]

    everything = await asyncio.to_thread(run_cli, "stats", "--json", "--include-unverified", *window, dsn=dsn)
    every = json.loads(everything.stdout)
    assert (every["total"], every["blocked"], every["block_rate"], every["unscanned_forwards"]) == (
        5,
        2,
        0.4,
        1,
    )
    assert every["verdicts"] == {"forward": 3, "reject": 1, "quarantine": 1}

    text = await asyncio.to_thread(run_cli, "stats", *window, dsn=dsn)
    assert text.returncode == 0, text.stderr
    lines = [line.split() for line in text.stdout.splitlines()]
    assert [
        "uploads",
        "4",
        "blocked",
        "1",
        "(25.0%)",
        "forwarded",
        "without",
        "a",
        "full",
        "scan",
        "1",
    ] in lines
    assert ["csam-pdq", "1", "1", "25.0%"] in lines
    assert ["local", "tvec", "1", "0", "0.0%"] in lines
    assert ["trial-terror", "reject", "1", "1"] in lines
    assert (
        "judged uploads of callers the PDS never accepted: 1 (not counted above; --include-unverified)"
        in (text.stdout)
    )
    empty = await asyncio.to_thread(
        run_cli, "stats", "--json", "--since", "2020-01-01", "--until", "2020-01-02", dsn=dsn
    )
    assert json.loads(empty.stdout)["total"] == 0


async def test_migrate_command_concurrent_and_idempotent(fresh_dsn: str) -> None:
    first, second = await asyncio.gather(
        asyncio.to_thread(run_cli, "migrate", dsn=fresh_dsn),
        asyncio.to_thread(run_cli, "migrate", dsn=fresh_dsn),
    )
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    outputs = sorted([first.stdout, second.stdout])
    assert outputs == [ALL_APPLIED, "schema up to date\n"]
    again = await asyncio.to_thread(run_cli, "migrate", dsn=fresh_dsn)
    assert again.stdout == "schema up to date\n"


async def test_reading_an_unmigrated_database_says_what_to_do(fresh_dsn: str) -> None:
    result = await asyncio.to_thread(run_cli, "decisions", dsn=fresh_dsn)
    assert result.returncode == 1
    assert "run `upload-gate migrate`" in result.stderr

    bad = await asyncio.to_thread(run_cli, "decisions", "--since", "yesterday", dsn=fresh_dsn)
    assert bad.returncode == 2
    assert "expected a duration like 30m" in bad.stderr


async def test_cli_uses_the_embedded_postgres_of_the_data_dir(tmp_path: Path) -> None:
    with server_dir() as data:
        # No gate running: the command starts the embedded server, and stops it on the way out.
        migrated = await asyncio.to_thread(run_cli, "migrate", data_dir=data)
        assert migrated.returncode == 0, migrated.stderr
        assert migrated.stdout == ALL_APPLIED
        assert not (data / "postgres" / "postmaster.pid").exists()

        embedded = EmbeddedPostgres(data)  # now a "gate" holds the server
        dsn = await asyncio.to_thread(embedded.start)
        try:
            records = [R.forward(n) for n in range(3)]
            await _write(dsn, tmp_path / "spool", records)
            rows = _lines(await asyncio.to_thread(run_cli, "decisions", "--json", data_dir=data))
            assert sorted(r["id"] for r in rows) == sorted(r.id for r in records)
            # The command left the server it joined running for the gate.
            conn = await asyncpg.connect(dsn)
            assert await conn.fetchval("SELECT count(*) FROM decisions") == 3
            await conn.close()
        finally:
            await asyncio.to_thread(embedded.stop)
        assert not (data / "postgres" / "postmaster.pid").exists()
