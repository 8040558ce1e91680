"""The fake HMA's curation routes (``/c/...``): banks, signals and content, as HMA 1.1.7 answers them."""

from __future__ import annotations

import hashlib
import time

from aiohttp import web

from tests.fakes.hma_http import BANK_NAME, Bank, Content, error, one_file, pdq_of_image, read_json, validate


class CurationRoutes:
    """Mixed into ``FakeHma``, which holds the state these handlers change."""

    banks: dict[str, Bank]
    contents: dict[int, Content]
    _indexed: set[int]

    def add_bank(self, name: str, ratio: float = 1.0) -> None:
        raise NotImplementedError

    def add_signal(self, bank: str, signal_type: str, value: str) -> int:
        raise NotImplementedError

    async def _list_banks(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            [
                {"matching_enabled_ratio": b.ratio, "name": b.name}
                for b in sorted(self.banks.values(), key=lambda b: b.name)
            ]
        )

    async def _create_bank(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not BANK_NAME.match(name):
            return error(400, "Bank names must be UPPER_WITH_UNDERSCORE")
        if name in self.banks:
            return error(403, f"bank '{name}' already exists")
        ratio = body.get("enabled_ratio", 1.0)
        self.add_bank(name, float(ratio))
        return web.json_response({"matching_enabled_ratio": float(ratio), "name": name}, status=201)

    async def _add_signal(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self.banks:
            return error(404, f"bank '{name}' not found")
        body = await read_json(request)
        if not isinstance(body, dict) or len(body) != 1:
            return error(400, "expected one {signal_type: signal}")
        ((signal_type, signal),) = body.items()
        problem = validate(signal_type, signal) if isinstance(signal, str) else "invalid signal"
        if problem:
            return error(400, problem)
        cid = self.add_signal(name, signal_type, signal.lower())
        return web.json_response({"id": cid, "signals": self.contents[cid].signals})

    async def _add_content(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self.banks:
            return error(404, f"bank '{name}' not found")
        kind, data = await one_file(request)
        if kind is None:
            return error(400, "exactly one file, field photo or video, is required")
        if kind == "video":
            cid = self.add_signal(name, "video_md5", hashlib.md5(data).hexdigest())
        else:
            pdq = pdq_of_image(data)
            if pdq is None:
                return error(500, "Internal Server Error")
            if not pdq:
                return web.json_response({"id": None, "signals": {}})
            cid = self.add_signal(name, "pdq", pdq)
        return web.json_response({"id": cid, "signals": self.contents[cid].signals})

    def _content(self, request: web.Request) -> Content | web.StreamResponse:
        name = request.match_info["name"]
        if name not in self.banks:
            return error(404, f"bank '{name}' not found")
        content = self.contents.get(
            int(request.match_info["id"]) if request.match_info["id"].isdigit() else -1
        )
        if content is None or content.bank != name:
            return error(404, "content not found")
        return content

    async def _set_content(self, request: web.Request) -> web.StreamResponse:
        content = self._content(request)
        if not isinstance(content, Content):
            return content
        body = await read_json(request)
        until = body.get("disable_until_ts") if isinstance(body, dict) else None
        if not isinstance(until, int):
            return error(400, "disable_until_ts is required")
        # HMA's special values: 0 disables, 1 enables; a timestamp disables until then.
        content.enabled = until != 0 and until <= time.time()
        return web.json_response({"id": content.id, "enabled": content.enabled})

    async def _delete_content(self, request: web.Request) -> web.StreamResponse:
        content = self._content(request)
        if not isinstance(content, Content):
            return content
        del self.contents[content.id]
        self._indexed.discard(content.id)
        return web.json_response({"deleted": 1})
