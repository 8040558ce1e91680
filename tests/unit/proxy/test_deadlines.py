"""The upstream waits' deadlines (gate.proxy.deadlines): asyncio's own timeout, expired by one sweep."""

from __future__ import annotations

import asyncio

import pytest

from gate.proxy.deadlines import Deadlines


async def bounded(deadlines: Deadlines, seconds: float) -> str:
    async with deadlines.within():
        await asyncio.sleep(seconds)
        return "answered"


async def test_a_wait_past_its_deadline_times_out_within_one_tick() -> None:
    deadlines = Deadlines(0.2)  # ticks every 0.02 s
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await bounded(deadlines, 5)
    assert 0.2 <= loop.time() - started < 0.2 + 0.15  # the tick, and a busy machine's slack
    deadlines.close()


async def test_waits_in_time_are_answered_and_each_keeps_its_own_deadline() -> None:
    deadlines = Deadlines(0.3)
    quick = asyncio.create_task(bounded(deadlines, 0.05))
    await asyncio.sleep(0.2)
    late = asyncio.create_task(bounded(deadlines, 0.2))  # 0.5 s after the first began: its own 0.3 s
    slow = asyncio.create_task(bounded(deadlines, 5))
    assert await quick == "answered"
    assert await late == "answered"
    with pytest.raises(TimeoutError):
        await slow
    deadlines.close()


async def test_an_outside_cancellation_stays_a_cancellation() -> None:
    deadlines = Deadlines(5)
    task = asyncio.create_task(bounded(deadlines, 5))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadlines.close()


async def test_the_sweep_stops_once_no_wait_is_registered() -> None:
    deadlines = Deadlines(0.1)
    assert await bounded(deadlines, 0) == "answered"
    await asyncio.sleep(0.05)  # past the one sweep the wait scheduled
    assert deadlines.idle()
