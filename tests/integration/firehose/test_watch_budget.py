"""``upload-gate watch`` holds its blobs under GATE_MEMORY_BUDGET_BYTES (its own budget): a worker that
knows its blob's size waits, holding nothing, until the blob's whole peak fits, so blobs too large to be
held together are judged one at a time and none is lost; a blob whose peak is over the whole budget is
recorded as a ``too_large`` fetch. The firehose, PLC directory and PDS are a real aiohttp app on a real
port; the watcher is ``run_watch`` itself, on a real Postgres."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from yarl import URL

from gate.firehose.fetch import BlobFetcher, FetchFailed
from gate.proxy.budget import peak
from tests.integration.firehose.test_firehose_watch import decisions, watching
from tests.support import firehose as fh
from tests.support.held_blobs import HighWater
from tests.support.waiting import until

GOOD = "did:plc:good"
SMALL = [bytes([n]) * (400 * 1024) for n in (1, 2, 3)]  # each one's peak fits the budget, two do not
HUGE = b"\4" * (700 * 1024)  # under the 1 MiB upload limit, but its peak is over the 2 MiB budget
BUDGET = 2 << 20


def held() -> float:
    return REGISTRY.get_sample_value("upload_gate_buffered_bytes") or 0.0


@pytest.fixture
async def network() -> AsyncIterator[fh.Network]:
    net = fh.Network(dids={GOOD}, bodies=asyncio.Event())
    async with contextlib.aclosing(fh.running(net)) as it:
        yield await it.__anext__()


async def test_blobs_wait_for_room_in_the_budget_and_an_oversized_peak_is_recorded(
    tmp_path: Path, fresh_dsn: str, network: fh.Network
) -> None:
    assert network.bodies is not None
    for data in (*SMALL, HUGE):
        network.blobs[fh.blob_cid(data)] = data
    network.frames = [
        fh.commit(seq, GOOD, {f"app.bsky.feed.post/{seq}": fh.post(data)})
        for seq, data in enumerate((*SMALL, HUGE), start=1)
    ]
    env = {"GATE_MAX_UPLOAD_BYTES": "1M", "GATE_MEMORY_BUDGET_BYTES": "2M", "GATE_FIREHOSE_WORKERS": "4"}
    async with HighWater(held) as water, watching(tmp_path, fresh_dsn, network, env=env):
        # Four workers have asked and know their sizes: the oversized one is refused at once, one small
        # blob holds its peak, the two others wait for it, holding nothing.
        await until("four getBlob calls", _asked(network, 4))
        await until("the oversized blob recorded", _rows(fresh_dsn, 1))
        await asyncio.sleep(0.3)
        assert held() == peak(len(SMALL[0]))
        assert len(await decisions(fresh_dsn)) == 1
        network.bodies.set()
        await until("four firehose decisions", _rows(fresh_dsn, 4))
    assert peak(len(SMALL[0])) <= water.highest <= BUDGET and held() == 0
    rows = {r["record_uri"]: r for r in await decisions(fresh_dsn)}
    huge = rows[f"at://{GOOD}/app.bsky.feed.post/4"]
    assert huge["verdict"] is None and huge["error"].startswith(f"fetch: too_large: {fh.blob_cid(HUGE)}")
    assert "GATE_MEMORY_BUDGET_BYTES" in huge["error"]
    for seq, data in enumerate(SMALL, start=1):
        row = rows[f"at://{GOOD}/app.bsky.feed.post/{seq}"]
        assert (row["error"], row["cid"]) == (None, fh.blob_cid(data)) and row["verdict"] is not None
    assert sorted(network.fetches) == sorted(fh.blob_cid(d) for d in (*SMALL, HUGE))


def _asked(network: fh.Network, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(network.fetches) >= n

    return check


def _rows(dsn: str, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(await decisions(dsn)) >= n

    return check


async def test_waiting_for_room_is_not_the_pds_time(network: fh.Network) -> None:
    """GATE_FIREHOSE_FETCH_TIMEOUT bounds the PDS (its headers, its body), not a blob's wait for room in
    the budget: a blob that waits longer than the deadline is still read, while a PDS slower than the
    deadline to send the body is still a ``timeout``."""
    bodies = network.bodies
    assert bodies is not None
    data = SMALL[0]
    network.blobs[fh.blob_cid(data)] = data
    fetcher = BlobFetcher(1 << 20, 0.5)
    await fetcher.start()
    try:

        async def slow_room(size: int) -> None:
            bodies.set()  # the PDS is quick; the wait for room is not
            await asyncio.sleep(1.0)

        pds = URL(network.url)
        assert await fetcher.fetch(pds, GOOD, fh.blob_cid(data), slow_room) == data
        bodies.clear()

        async def room(size: int) -> None:
            return None

        with pytest.raises(FetchFailed) as failed:  # the PDS sends its headers, then nothing for too long
            await fetcher.fetch(pds, GOOD, fh.blob_cid(data), room)
        assert failed.value.kind == "timeout"
    finally:
        bodies.set()
        await fetcher.close()
