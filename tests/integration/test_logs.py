"""What an operator reads on stderr when the gate starts on its embedded Postgres, judges an upload and
stops: a few honest lines (one for the embedded Postgres), no warnings when nothing is wrong, nothing
on stdout, no credentials; with GATE_LOG_FORMAT=json, one JSON object per line."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import process_env
from tests.support.boot import gate_process
from tests.support.images import encode, photo
from tests.support.postgres import server_dir
from tests.support.upstream import RecordingUpstream

# A JWT-shaped access token: the gate reads its claims but must never write it down.
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjOmxvZ3Rlc3QiLCJzY29wZSI6ImNvbS5hdHByb3RvLmFjY2VzcyJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_healthy_run_logs_a_few_honest_lines(
    tmp_path: Path, upstream: tuple[RecordingUpstream, str], fmt: str
) -> None:
    recorder, upstream_url = upstream
    body = encode(photo("coffee.png").resize((300, 200)), "PNG")
    with server_dir() as data:
        env = {
            **process_env(tmp_path, upstream_url, ""),
            "DATABASE_URL": "",  # the gate's own embedded Postgres
            "GATE_DATA_DIR": str(data),
            "GATE_LOG_FORMAT": fmt,
        }
        async with gate_process(env, tmp_path) as gate:
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    gate.url + "/xrpc/com.atproto.repo.uploadBlob",
                    data=body,
                    headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"},
                ) as resp,
            ):
                assert resp.status == 200
            assert [u.body for u in recorder.uploads()] == [body]
            assert gate.stop() == 0

    log = gate.log()
    assert gate.stdout.read_text() == ""
    lines: list[tuple[str, ...]]  # (level, logger, message), checked below
    if fmt == "json":
        entries = [json.loads(line) for line in log.splitlines()]
        assert all(set(e) >= {"time", "level", "logger", "message", "pid"} for e in entries)
        lines = [(str(e["level"]), str(e["logger"]), str(e["message"])) for e in entries]
    else:
        lines = [tuple(line.split(" ", 4)[2:]) for line in log.splitlines() if line[:2] == "20"]
        assert len(lines) == len(log.splitlines()), log  # every line is a log line (no stray output)
    assert all(len(x) == 3 for x in lines), log
    levels = {level for level, _, _ in lines}
    assert levels <= {"INFO"}, log  # nothing is wrong, so nothing says so
    assert not [x for x in lines if x[1] == "pgserver"], log
    postgres = [m for _, _, m in lines if "Postgres" in m and "embedded" in m]
    assert len(postgres) == 1 and postgres[0].startswith(f"embedded Postgres started in {data}"), log
    assert any(m.startswith("gate listening on 127.0.0.1:") for _, _, m in lines), log
    assert len(lines) <= 12, log
    assert TOKEN not in log and TOKEN.split(".")[2] not in log
