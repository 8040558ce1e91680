"""SIGTERM with uploads in flight, against ``python -m gate serve`` on its real port.

Bodies still arriving when the drain window ends get a well-formed 503 with Retry-After; a body that
finishes within the window, and an upload already read, are judged and answered as usual; idle
connections are closed and new ones refused; the process exits cleanly.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import process_env
from tests.support.boot import gate_process
from tests.support.raw_http import closed_by_peer, read_response, request_head, start_upload
from tests.support.scrape import sample
from tests.support.upstream import RecordingUpstream

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
KiB = 1024
DRAIN = 2.0


async def test_sigterm_answers_every_upload(
    tmp_path: Path, upstream: tuple[RecordingUpstream, str], fresh_dsn: str
) -> None:
    rec, url = upstream
    rec.delay = 2 * DRAIN  # the PDS is slow: the read upload is still being forwarded when bodies are cut
    env = process_env(tmp_path, url, fresh_dsn) | {"GATE_DRAIN_TIMEOUT": str(DRAIN)}
    async with gate_process(env, tmp_path) as gate:
        host, port = gate.public
        read_body = b"\1" * (64 * KiB)

        async def read_upload() -> int:
            headers = {"Authorization": "Bearer t", "Content-Type": "image/png"}
            async with (
                aiohttp.ClientSession() as s,
                s.post(gate.url + UPLOAD, data=read_body, headers=headers) as r,
            ):
                await r.read()
                return r.status

        done = asyncio.create_task(read_upload())
        arriving = await start_upload(host, port, 1024 * KiB, b"\0" * (100 * KiB))
        finishing = await start_upload(host, port, 200 * KiB, b"\2" * (100 * KiB))
        idle_reader, idle = await asyncio.open_connection(host, port)
        idle.write(request_head("GET", b"/xrpc/_health", {"Host": "h"}))
        assert (await read_response(idle_reader)).status == 200
        while not rec.uploads():  # the read upload has reached the PDS
            await asyncio.sleep(0.05)

        loop = asyncio.get_running_loop()
        gate.proc.send_signal(signal.SIGTERM)
        stopped_at = loop.time()
        assert await closed_by_peer(idle_reader, 2)  # an idle kept-alive connection is closed at once
        with pytest.raises(OSError):
            for _ in range(20):  # the listening socket is closed as soon as the signal is handled
                _, w = await asyncio.open_connection(host, port)
                w.close()
                await asyncio.sleep(0.05)
        finishing[1].write(b"\2" * (100 * KiB))  # this body completes within the window

        cut = await read_response(arriving[0], timeout=DRAIN + 5)
        waited = loop.time() - stopped_at
        assert (cut.status, cut.json()) == (
            503,
            {"error": "Overloaded", "message": "The upload gate is shutting down; retry shortly"},
        )
        assert cut.headers["retry-after"].isdigit() and cut.headers["connection"] == "close"
        assert DRAIN - 0.5 < waited < DRAIN + 3, waited
        assert await sample(gate.admin_url, "upload_gate_shutdown_refusals_total", stage="arriving") == 1

        finished = await read_response(finishing[0], timeout=2 * DRAIN + 5)
        assert finished.status == 200
        assert await done == 200  # read before the signal: judged, forwarded, answered
        for _, writer in (arriving, finishing):
            writer.close()
        idle.close()
        deadline = time.monotonic() + 30
        while gate.proc.poll() is None:
            assert time.monotonic() < deadline, gate.log()
            await asyncio.sleep(0.1)
        assert gate.proc.returncode == 0, gate.log()
    assert [len(s.body) for s in rec.uploads()] == [64 * KiB, 200 * KiB]
    assert "Traceback" not in gate.log()
