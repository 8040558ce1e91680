"""Waiting in a test for what runs in the background (a job, a replica, another process) to have happened,
or to have stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(what: str, check: Callable[[], bool | Awaitable[bool]], timeout: float = 30) -> None:
    """Wait for ``check`` (plain or async) to hold; AssertionError naming ``what`` after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                now = check()
                if now if isinstance(now, bool) else await now:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"waited {timeout:g} s for {what}") from None


async def stalled(progress: Callable[[], int], quiet: float = 1.0, timeout: float = 30) -> int:
    """Wait until ``progress()`` has not moved for ``quiet`` seconds (a sender held back); its value then."""
    last = progress()
    async with asyncio.timeout(timeout):
        while True:
            await asyncio.sleep(quiet)
            if progress() == last:
                return last
            last = progress()
