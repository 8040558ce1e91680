"""``frozen_heap``: the start-up heap kept out of the garbage collector's full collections while the
gate serves.

Everything loaded at start-up (modules, banks, the policy, the parts in ``Deps``) lives as long as the
gate does, yet a full collection walks all of it, holding the event loop meanwhile: measured under
1,000 decisions/s (``bench/decision_log.py``), one full collection held every upload for ~100 ms. The
decision log's queue is what sets them off: its records live for a flush interval, long enough to be
promoted to the oldest generation, and enough of those dying there triggers a full collection. Frozen
(``gc.freeze``), the start-up heap is skipped; a full collection then walks only what was allocated since.
Unfrozen when the app stops, so a test process that starts many gates keeps collecting their garbage.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

from aiohttp import web


async def frozen_heap(app: web.Application) -> AsyncIterator[None]:
    """An aiohttp ``cleanup_ctx``: ``gc.freeze()`` once the app starts, ``gc.unfreeze()`` when it stops."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
