"""The start-up heap is frozen while an app with ``frozen_heap`` serves, and thawed when it stops."""

from __future__ import annotations

import gc

from aiohttp import web

from gate.heap import frozen_heap


async def test_frozen_while_serving_and_thawed_after() -> None:
    app = web.Application()
    app.cleanup_ctx.append(frozen_heap)
    runner = web.AppRunner(app)
    assert gc.get_freeze_count() == 0
    await runner.setup()
    try:
        assert gc.get_freeze_count() > 1000  # the modules and objects already loaded, at least
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle made while serving is not frozen: a collection still frees it
        del garbage
        assert gc.collect() >= 1
    finally:
        await runner.cleanup()
    assert gc.get_freeze_count() == 0
