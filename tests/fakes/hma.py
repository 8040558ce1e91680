"""A fake HMA (OpenMediaMatch 1.1.7): a real aiohttp server on a real ephemeral port.

It follows ``/work/shared/facts/hma-api.md`` route by route, quirks included: distances are strings
(``"-"`` for exact types), PDQ matches within 31 bits inclusive, the per-bank coinflip is seeded from
``seed`` (GET never bypasses it), unknown bank names silently give ``{}``, uppercase PDQ is a 400, a
missing parameter a 422, lookups answer 503 ``index not yet ready`` while the index is not loaded, and
(ThreatExchange #1318) a PDQ index holding exactly one hash never matches.

New content is matchable at once unless ``index_delay`` is set (then only after ``rebuild_index()``),
like HMA's background indexer. Switches for tests: ``latency`` (seconds per lookup), ``serialise``
(one worker: lookups one at a time), ``fail`` (see ``FAILURES``), ``ready`` / ``stale``.

    async with FakeHma() as hma:
        hma.add_bank("BANK_A")
        hma.add_signal("BANK_A", "pdq", "f" * 64)
        url = hma.url
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.hma_curation import CurationRoutes
from tests.fakes.hma_http import (
    SIGNAL_TYPES,
    Bank,
    Content,
    error,
    one_file,
    pdq_of_image,
    unprocessable,
    validate,
)

PDQ_THRESHOLD = 31  # hard-coded in HMA, inclusive
# "http_500": 500 JSON message · "not_ready": 503 index not yet ready · "malformed": 200 with a body that
# is not JSON · "wrong_shape": 200 JSON of the wrong shape · "bad_distance": a non-numeric distance ·
# "http_400": 400 invalid signal · "hang": answers after 30 s · "drop": closes the connection unanswered.
FAILURES = ("http_500", "not_ready", "malformed", "wrong_shape", "bad_distance", "http_400", "hang", "drop")


@dataclass
class FakeHma(CurationRoutes):
    latency: float = 0.0
    serialise: bool = False
    fail: str | None = None
    fail_next: int | None = None  # None: ``fail`` applies to every lookup; N: only to the next N
    ready: bool = True  # False: /status INDEX-NOT-LOADED and lookups 503
    stale: bool = False  # /status INDEX-STALE (lookups still answer, from the old index)
    index_delay: bool = False  # True: new content matchable only after rebuild_index()
    one_hash_bug: bool = True
    banks: dict[str, Bank] = field(default_factory=dict)
    contents: dict[int, Content] = field(default_factory=dict)
    lookups: list[dict[str, str]] = field(default_factory=list)  # query of every GET /m/lookup seen
    _indexed: set[int] = field(default_factory=set)
    _built_to: int = 0
    _runner: web.AppRunner | None = None
    _port: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    # ---- server lifecycle --------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.add_routes(
            [
                web.get("/m/lookup", self._get_lookup),
                web.post("/m/lookup", self._post_lookup),
                web.get("/m/raw_lookup", self._raw_lookup),
                web.post("/h/hash", self._hash),
                web.get("/m/index/status", self._index_status),
                web.get("/status", self._status),
                web.get("/status/live", self._live),
                web.get("/c/banks", self._list_banks),
                web.post("/c/banks", self._create_bank),
                web.post("/c/bank/{name}/signal", self._add_signal),
                web.post("/c/bank/{name}/content", self._add_content),
                web.put("/c/bank/{name}/content/{id}", self._set_content),
                web.delete("/c/bank/{name}/content/{id}", self._delete_content),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)  # port 0 the first time: ephemeral
        await site.start()
        self._port = int(self._runner.addresses[0][1])  # (host, port) of the one site's socket
        return self.url

    async def stop(self) -> None:
        """Stop listening (connections to ``url`` are then refused); ``start()`` again reuses the port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeHma:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # ---- direct set-up (the same state the curation routes change) ---------------------------------

    def add_bank(self, name: str, ratio: float = 1.0) -> None:
        self.banks[name] = Bank(name, ratio)

    def add_signal(self, bank: str, signal_type: str, value: str) -> int:
        content = Content(id=len(self.contents) + 1, bank=bank, signals={signal_type: value})
        self.contents[content.id] = content
        if not self.index_delay:
            self.rebuild_index()
        return content.id

    def rebuild_index(self) -> None:
        self._indexed = set(self.contents)
        self._built_to = int(time.time())

    # ---- matching ----------------------------------------------------------------------------------

    def _search(
        self, signal_type: str, signal: str, banks: list[str] | None, seed: str | None, coinflip: bool
    ) -> dict[str, list[dict[str, Any]]]:
        names = sorted(self.banks) if banks is None else [b for b in banks if b in self.banks]
        rng = random.Random(seed) if seed is not None else random.Random()
        # HMA searches a bank only if its ratio >= random(): one draw per bank, in name order.
        searched = {n for n in names if not coinflip or self.banks[n].ratio >= rng.random()}
        indexed = [self.contents[i] for i in self._indexed if i in self.contents]
        pdq_count = sum(1 for c in indexed if "pdq" in c.signals)
        out: dict[str, list[dict[str, Any]]] = {}
        for content in sorted(indexed, key=lambda c: c.id):
            value = content.signals.get(signal_type)
            if value is None or content.bank not in searched or not content.enabled:
                continue
            if signal_type == "pdq":
                if self.one_hash_bug and pdq_count == 1:
                    continue  # ThreatExchange #1318
                distance = bin(int(value, 16) ^ int(signal, 16)).count("1")
                if distance > PDQ_THRESHOLD:
                    continue
                shown = str(distance)
            elif value == signal:
                shown = "-"
            else:
                continue
            out.setdefault(content.bank, []).append({"bank_content_id": content.id, "distance": shown})
        return out

    def _failing(self) -> bool:
        """Whether ``fail`` applies to this lookup (``fail_next`` limits it to the next N lookups)."""
        if self.fail is None:
            return False
        if self.fail_next is None:
            return True
        if self.fail_next <= 0:
            return False
        self.fail_next -= 1
        return True

    async def _service(self, failing: bool) -> web.StreamResponse | None:
        """Latency, the single worker and the failure switches: a response to send instead, or None."""
        if self.serialise:
            async with self._lock:
                await asyncio.sleep(self.latency)
        elif self.latency:
            await asyncio.sleep(self.latency)
        if not self.ready:
            return error(503, "index not yet ready")
        if not failing:
            return None
        if self.fail == "hang":
            await asyncio.sleep(30)
        if self.fail == "http_500":
            return error(500, "Internal Server Error")
        if self.fail == "not_ready":
            return error(503, "index not yet ready")
        if self.fail == "malformed":
            return web.Response(
                status=200, text='{"BANK": [{"bank_content_id": 1,', content_type="application/json"
            )
        if self.fail == "wrong_shape":
            return web.json_response(["not", "a", "mapping"])
        if self.fail == "http_400":
            return error(400, "invalid signal: invalid PDQ hash")
        return None

    async def _get_lookup(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        self.lookups.append(dict(q))
        failing = self._failing()
        if failing and self.fail == "drop":
            assert request.transport is not None
            request.transport.close()  # the client sees the connection end without an answer
            return web.Response()
        if "url" in q:
            return error(403, "url lookups need the hasher role")
        missing = [p for p in ("signal", "signal_type") if p not in q]
        if len(missing) == 2:
            return error(400, "Either url or both signal and signal_type are required")
        if missing:
            return unprocessable(missing)
        signal_type, signal = q["signal_type"], q["signal"]
        problem = validate(signal_type, signal)
        if problem:
            return error(400, problem)
        failed = await self._service(failing)
        if failed is not None:
            return failed
        banks = [b for b in q["banks"].split(",") if b] if "banks" in q else None
        if signal_type == "video_md5":
            signal = signal.lower()
        result = self._search(signal_type, signal, banks, q.get("seed"), coinflip=True)
        if failing and self.fail == "bad_distance":
            result = {b: [{**e, "distance": "near"} for e in es] for b, es in result.items()} or {
                "BANK": [{"bank_content_id": 1, "distance": "near"}]
            }
        return web.json_response(result)

    async def _post_lookup(self, request: web.Request) -> web.StreamResponse:
        kind, data = await one_file(request)
        if kind is None:
            return error(400, "exactly one file, field photo or video, is required")
        if not self.ready:
            return error(503, "index not yet ready")
        q = request.query
        banks = [b for b in q["banks"].split(",") if b] if "banks" in q else None
        coinflip = q.get("bypass_coinflip", "").lower() != "true"
        if kind == "video":
            signal_type, signal = "video_md5", hashlib.md5(data).hexdigest()
        else:
            pdq = pdq_of_image(data)
            if pdq is None:
                return error(500, "Internal Server Error")
            signal_type, signal = "pdq", pdq
        return web.json_response(
            {signal_type: self._search(signal_type, signal, banks, q.get("seed"), coinflip)}
        )

    async def _raw_lookup(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        missing = [p for p in ("signal", "signal_type") if p not in q]
        if missing:
            return unprocessable(missing)
        problem = validate(q["signal_type"], q["signal"])
        if problem:
            return error(400, problem)
        banks = [b for b in q["banks"].split(",") if b] if "banks" in q else None
        # raw_lookup ignores bank enable state and content disables.
        saved = {c.id: c.enabled for c in self.contents.values()}
        for content in self.contents.values():
            content.enabled = True
        try:
            found = self._search(q["signal_type"], q["signal"], banks, None, coinflip=False)
        finally:
            for cid, enabled in saved.items():
                self.contents[cid].enabled = enabled
        entries = [e for es in found.values() for e in es]
        if q.get("include_distance", "").lower() == "true":
            return web.json_response({"matches": entries})
        return web.json_response({"matches": [e["bank_content_id"] for e in entries]})

    async def _hash(self, request: web.Request) -> web.StreamResponse:
        kind, data = await one_file(request)
        if kind != "photo":
            return error(400, "a photo file is required")
        pdq = pdq_of_image(data)
        if pdq is None:
            return error(500, "Internal Server Error")
        return web.json_response({"pdq": pdq})

    # ---- health ------------------------------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.StreamResponse:
        if not self.ready:
            return web.Response(status=503, text="INDEX-NOT-LOADED")
        if self.stale:
            return web.Response(status=503, text="INDEX-STALE")
        return web.Response(text="I-AM-ALIVE")

    async def _live(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="I-AM-ALIVE")

    async def _index_status(self, request: web.Request) -> web.StreamResponse:
        indexed = [self.contents[i] for i in self._indexed if i in self.contents]
        return web.json_response(
            {
                s: {
                    "built_to": self._built_to if self._indexed else -1,
                    "present": bool(self._indexed),
                    "size": sum(1 for c in indexed if s in c.signals),
                }
                for s in SIGNAL_TYPES
            }
        )


@contextmanager
def fake_hma_in_thread(**switches: Any) -> Iterator[FakeHma]:
    """A FakeHma serving from its own event loop in a thread: for sync fixtures, module scope, benchmarks.

    Change its switches only between requests (the loop thread reads them).
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-hma", daemon=True)
    thread.start()
    fake = FakeHma(**switches)
    try:
        asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
