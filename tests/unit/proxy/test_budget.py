"""The memory budget counts a hashing worker's copy of a body: held while it hashes, refused or waited
for when it does not fit, always given back."""

from __future__ import annotations

import asyncio

import pytest

from gate.errors import Overloaded
from gate.proxy.budget import MemoryBudget, Reservation


async def test_a_worker_copy_that_fits_is_counted_while_it_is_held() -> None:
    budget = MemoryBudget(100)
    body = Reservation(budget)
    body.grow_to(50)
    async with budget.worker_copy(50):
        assert (budget.used, budget.hashing) == (100, 50)
    assert (budget.used, budget.hashing) == (50, 0)
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
    assert (budget.used, budget.hashing) == (80, 0)  # nothing of the refused copy is kept


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
    assert (budget.used, budget.hashing) == (70, 0)


async def test_a_worker_copy_is_given_back_when_hashing_fails() -> None:
    budget = MemoryBudget(100)
    with pytest.raises(RuntimeError):
        async with budget.worker_copy(60):
            raise RuntimeError("the worker died")
    assert (budget.used, budget.hashing) == (0, 0)
