"""The memory budget counts a hashing worker's copy of a body and a blocked body's evidence: held while
they live, refused or waited for when they do not fit, always given back; a backfill's blob is admitted
whole, waiting (holding nothing) until it fits."""

from __future__ import annotations

import asyncio

import pytest

from gate.errors import Overloaded
from gate.proxy.budget import Admission, MemoryBudget, Reservation


async def test_a_worker_copy_that_fits_is_counted_while_it_is_held() -> None:
    budget = MemoryBudget(100)
    body = Reservation(budget)
    body.grow_to(50)
    async with budget.worker_copy(50):
        assert (budget.used, budget.passing) == (100, 50)
    assert (budget.used, budget.passing) == (50, 0)
    body.release()
    assert budget.used == 0


async def test_a_worker_copy_with_nothing_to_wait_for_is_refused() -> None:
    """Bodies still arriving fill the budget: no worker copy is out whose return could make room."""
    budget = MemoryBudget(100)
    Reservation(budget).grow_to(40)
    body = Reservation(budget)
    body.grow_to(40)
    with pytest.raises(Overloaded):
        async with budget.worker_copy(40):
            pytest.fail("hashed past the budget")
    assert (budget.used, budget.passing) == (80, 0)  # nothing of the refused copy is kept


async def test_a_worker_copy_waits_for_another_to_come_back() -> None:
    budget = MemoryBudget(100)
    first, second = Reservation(budget), Reservation(budget)
    first.grow_to(30)
    second.grow_to(30)
    highest = 0
    done = asyncio.Event()

    async def hash_second() -> None:
        nonlocal highest
        async with budget.worker_copy(30):
            highest = max(highest, budget.used)
        done.set()

    async with budget.worker_copy(30):
        waiting = asyncio.create_task(hash_second())
        await asyncio.sleep(0.05)
        assert not done.is_set() and budget.used == 90  # 60 read + the first worker's 30: no room for 30
    await asyncio.wait_for(waiting, 1)
    assert highest == 90 and budget.used == 60  # its turn came, within the budget


async def test_a_waiting_copy_is_refused_once_nothing_is_left_to_wait_for() -> None:
    """The copy it waited for came back, and bodies arriving meanwhile took the room."""
    budget = MemoryBudget(100)
    Reservation(budget).grow_to(30)
    Reservation(budget).grow_to(30)
    arriving = Reservation(budget)

    async def hash_one() -> None:
        async with budget.worker_copy(40):
            pass

    async with budget.worker_copy(30):
        waiting = asyncio.create_task(hash_one())
        await asyncio.sleep(0.01)
        arriving.grow_to(10)  # 100: full
    with pytest.raises(Overloaded):  # 70 held and nothing hashing: 40 more will never fit
        await asyncio.wait_for(waiting, 1)
    assert (budget.used, budget.passing) == (70, 0)


async def test_a_worker_copy_is_given_back_when_hashing_fails() -> None:
    budget = MemoryBudget(100)
    with pytest.raises(RuntimeError):
        async with budget.worker_copy(60):
            raise RuntimeError("the worker died")
    assert (budget.used, budget.passing) == (0, 0)


async def test_evidence_waits_for_a_worker_copy_and_a_worker_copy_for_evidence() -> None:
    budget = MemoryBudget(100)
    Reservation(budget).grow_to(40)
    order: list[str] = []

    async def seal() -> None:
        async with budget.evidence_copy(40):
            order.append("sealed")

    async with budget.worker_copy(30):
        waiting = asyncio.create_task(seal())
        await asyncio.sleep(0.01)
        assert order == [] and budget.used == 70  # 40 + 30: the evidence's 40 waits for the worker's copy
        order.append("hashed")
    await asyncio.wait_for(waiting, 1)
    assert order == ["hashed", "sealed"] and (budget.used, budget.passing) == (40, 0)


async def test_admissions_wait_holding_nothing_and_shrink_to_their_real_size() -> None:
    budget = MemoryBudget(100)
    first, second = Admission(budget), Admission(budget)
    await first.admit(70)
    waiting = asyncio.create_task(second.admit(60))
    await asyncio.sleep(0.01)
    assert not waiting.done() and (budget.used, second.held) == (70, 0)  # it waits holding nothing
    first.shrink_to(40)  # the blob was smaller than declared: 40 + 60 fit
    await asyncio.wait_for(waiting, 1)
    assert (budget.used, first.held, second.held) == (100, 40, 60)
    first.release()
    second.release()
    assert budget.used == 0


async def test_admissions_wait_in_turn_so_a_large_one_is_not_passed_by_small_ones() -> None:
    budget = MemoryBudget(100)
    first, large, small = Admission(budget), Admission(budget), Admission(budget)
    await first.admit(50)
    waiting_large = asyncio.create_task(large.admit(80))
    await asyncio.sleep(0.01)
    waiting_small = asyncio.create_task(small.admit(10))  # would fit now, but comes after the large one
    await asyncio.sleep(0.01)
    assert not waiting_large.done() and not waiting_small.done() and budget.used == 50
    first.release()
    await asyncio.wait_for(asyncio.gather(waiting_large, waiting_small), 1)
    assert (large.held, small.held, budget.used) == (80, 10, 90)


async def test_an_admission_over_the_whole_budget_is_refused_at_once() -> None:
    budget = MemoryBudget(100)
    with pytest.raises(Overloaded, match="GATE_MEMORY_BUDGET_BYTES"):
        await Admission(budget).admit(101)
    assert budget.used == 0
