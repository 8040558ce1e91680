"""A real aiohttp server on a real port that records the requests it gets and answers from a script:
the webhook receiver and the stand-in PDS (getSession, admin updateSubjectStatus) of the integration tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDictProxy

from tests.support.serving import serving


@dataclass
class Received:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes


Answer = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


@dataclass
class Receiver:
    url: str = ""
    got: list[Received] = field(default_factory=list)
    # path → answer; a list of statuses is consumed one per request (then the last one repeats)
    statuses: list[int] = field(default_factory=lambda: [200])
    routes: dict[str, Answer] = field(default_factory=dict)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.got if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.got.append(Received(request.method, request.path, request.headers, body))
        answer = self.routes.get(request.path)
        if answer is not None:
            return await answer(request, body)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return web.json_response({"ok": status < 400}, status=status)


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    async with serving(app) as rec.url:
        yield rec
