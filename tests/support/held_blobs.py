"""A PDS's getBlob that holds its bodies: the headers go out at once, each body only once ``go`` is set.
A reader learns a blob's size first, and then either holds its bytes or waits for room in the memory
budget, which is what the budget tests watch (the scan's, the retro-hunt's, the watcher's), with
``HighWater``; ``budgeted`` sets up the scan's parts for them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

from aiohttp import web
from yarl import URL

from gate.blob_fetch import PdsSync
from gate.proxy.budget import MemoryBudget
from gate.scan.parts import Parts, open_parts
from gate.settings import Settings
from tests.support.cids import cid_of


class HeldBlobs:
    def __init__(self, blobs: list[bytes]) -> None:
        self.blobs = {cid_of(b): b for b in blobs}
        self.asked: list[str] = []  # CIDs in the order getBlob was asked for them
        self.go = asyncio.Event()

    async def get_blob(self, request: web.Request) -> web.StreamResponse:
        cid = request.query["cid"]
        self.asked.append(cid)
        body = self.blobs[cid]
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(body)
        await response.prepare(request)
        await self.go.wait()
        await response.write(body)
        await response.write_eof()
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/xrpc/com.atproto.sync.getBlob", self.get_blob)
        return app


class HighWater:
    """The most ``read()`` gave at any turn of the event loop while the ``async with`` block ran (the
    bytes a budget held)."""

    def __init__(self, read: Callable[[], float]) -> None:
        self._read = read
        self.highest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HighWater:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self) -> None:
        while True:
            self.highest = max(self.highest, self._read())
            await asyncio.sleep(0.001)


class Budgeted(NamedTuple):
    parts: Parts
    sync: PdsSync
    budget: MemoryBudget
    water: HighWater


@contextlib.asynccontextmanager
async def budgeted(env: dict[str, str], url: str) -> AsyncIterator[Budgeted]:
    """``upload-gate scan``'s parts on ``env`` with 1 MiB uploads in a 2 MiB GATE_MEMORY_BUDGET_BYTES, the
    PDS's sync API at ``url``, that budget and its high-water mark."""
    settings = Settings.from_env({**env, "GATE_MAX_UPLOAD_BYTES": "1M", "GATE_MEMORY_BUDGET_BYTES": "2M"})
    budget = MemoryBudget(settings.memory_budget_bytes)
    async with (
        open_parts(settings) as parts,
        PdsSync(URL(url), max_bytes=settings.max_upload_bytes) as sync,
        HighWater(lambda: budget.used) as water,
    ):
        yield Budgeted(parts, sync, budget, water)
