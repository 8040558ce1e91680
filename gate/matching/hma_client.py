"""The HTTP client for HMA (OpenMediaMatch): each call returns parsed values or raises ``HmaCallError``.

The contract is ``hma-api.md`` (measured against HMA 1.1.7): distances are strings (``"-"`` for exact
types), errors are ``{"message": ...}`` JSON, GET /status answers text. Trust boundary: HMA's answers
are parsed strictly here, so a proxy error page or a half-written body becomes ``malformed``, never
"no match". Nothing from the upload but its hashes and its SHA-256 (the coinflip seed) is sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from gate.errors import Unavailable
from gate.matching.answer_cache import Hit
from gate.signals import SignalType

MESSAGE_LIMIT = 200  # characters of an HMA error message kept in a failure detail


class HmaCallError(Unavailable):
    """One HMA call failed. ``kind`` is a bounded ``MatcherFailure.kind``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class HmaBank:
    name: str
    matching_enabled_ratio: float


@dataclass(frozen=True, slots=True)
class HmaStatus:
    ready: bool
    detail: str  # "I-AM-ALIVE", "INDEX-NOT-LOADED", "INDEX-STALE", or why /status gave no answer
    reachable: bool = True


@dataclass(frozen=True, slots=True)
class IndexStatus:
    present: bool
    size: int
    built_to: int | None


def parse_distance(raw: object) -> int | None:
    """HMA's distance strings: ``"0"``…``"31"`` for PDQ, ``"-"`` for exact types (→ None)."""
    if raw == "-":
        return None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and int(raw) <= 256:
        return int(raw)
    raise HmaCallError("malformed", f"distance {str(raw)[:20]!r} is not a number of bits or '-'")


def parse_lookup(body: object) -> tuple[Hit, ...]:
    """``{"BANK": [{"bank_content_id": 1, "distance": "0"}]}``; ``{}`` is no match."""
    if not isinstance(body, dict):
        raise HmaCallError("malformed", "lookup answer is not a JSON object")
    hits: list[Hit] = []
    for bank, entries in body.items():
        if not isinstance(entries, list):
            raise HmaCallError("malformed", "lookup answer maps a bank to something other than a list")
        for entry in entries:
            content_id = entry.get("bank_content_id") if isinstance(entry, dict) else None
            if not isinstance(content_id, int) or isinstance(content_id, bool):
                raise HmaCallError("malformed", "lookup entry without an integer bank_content_id")
            hits.append(Hit(bank=bank, content_id=content_id, distance=parse_distance(entry.get("distance"))))
    return tuple(hits)


def parse_banks(body: object) -> list[HmaBank]:
    if not isinstance(body, list):
        raise HmaCallError("malformed", "GET /c/banks did not answer a JSON list")
    banks: list[HmaBank] = []
    for entry in body:
        name = entry.get("name") if isinstance(entry, dict) else None
        ratio = entry.get("matching_enabled_ratio") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(ratio, int | float) or isinstance(ratio, bool):
            raise HmaCallError("malformed", "GET /c/banks entry without a name and matching_enabled_ratio")
        banks.append(HmaBank(name=name, matching_enabled_ratio=float(ratio)))
    return banks


def parse_index_status(body: object) -> dict[str, IndexStatus]:
    if not isinstance(body, dict):
        raise HmaCallError("malformed", "GET /m/index/status did not answer a JSON object")
    out: dict[str, IndexStatus] = {}
    for signal, entry in body.items():
        if not isinstance(entry, dict):
            raise HmaCallError("malformed", f"index status of {str(signal)[:20]!r} is not an object")
        size, built_to = entry.get("size", 0), entry.get("built_to")
        out[signal] = IndexStatus(
            present=bool(entry.get("present")),
            size=size if isinstance(size, int) else 0,
            built_to=built_to if isinstance(built_to, int) else None,
        )
    return out


@dataclass(frozen=True, slots=True)
class Answer:
    """One HMA answer, read whole (they are small: a lookup, a bank list, a status line)."""

    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def _message(response: Answer) -> str:
    """HMA's ``{"message": ...}`` if there is one, else the start of the body, shortened."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:MESSAGE_LIMIT]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:MESSAGE_LIMIT]
    return json.dumps(body)[:MESSAGE_LIMIT]


class HmaClient:
    """One pooled aiohttp session to one HMA (opened on first use). Calls never outlive ``timeout``."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 0.5,
        timeout: float = 2.0,
        max_connections: int = 16,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            # trust_env stays False: HMA lives on a private network; an HTTP(S)_PROXY meant for the
            # outside world must not carry hashes elsewhere.
            self._http = aiohttp.ClientSession(
                self.base_url + "/",
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(sock_connect=self._connect_timeout, sock_read=self.timeout),
            )
        return self._http

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _get(self, path: str, params: dict[str, str] | None, within: float | None) -> Answer:
        limit = self.timeout if within is None else within
        try:
            async with asyncio.timeout(limit):
                async with self._session().get(path.lstrip("/"), params=params) as response:
                    return Answer(response.status, await response.read())
        except TimeoutError:
            raise HmaCallError("timeout", f"GET {path}: no answer within {limit:.3g}s") from None
        except aiohttp.ClientConnectorError as exc:
            raise HmaCallError("refused", f"GET {path}: cannot connect ({type(exc).__name__})") from None
        except aiohttp.ClientError as exc:
            raise HmaCallError("error", f"GET {path}: {type(exc).__name__}") from None

    def _raise_for_status(self, path: str, response: Answer) -> None:
        status = response.status
        if status == 503:
            raise HmaCallError("not_ready", f"GET {path}: 503 {_message(response)}")
        if status >= 500:
            raise HmaCallError("http_5xx", f"GET {path}: {status} {_message(response)}")
        if status >= 400:
            raise HmaCallError("http_4xx", f"GET {path}: {status} {_message(response)}")
        if status != 200:
            raise HmaCallError("malformed", f"GET {path}: unexpected status {status}")

    async def _get_json(self, path: str, params: dict[str, str] | None, within: float | None) -> Any:
        response = await self._get(path, params, within)
        self._raise_for_status(path, response)
        try:
            return response.json()
        except ValueError:
            raise HmaCallError("malformed", f"GET {path}: the answer is not JSON") from None

    async def lookup(
        self,
        signal: SignalType,
        value: str,
        *,
        banks: tuple[str, ...] | None = None,
        seed: str | None = None,
        within: float | None = None,
    ) -> tuple[Hit, ...]:
        """``GET /m/lookup`` for one hash; ``banks`` None = every bank HMA has."""
        params = {"signal_type": signal.value, "signal": value}
        if banks is not None:
            params["banks"] = ",".join(banks)
        if seed is not None:
            params["seed"] = seed
        return parse_lookup(await self._get_json("/m/lookup", params, within))

    async def banks(self, within: float | None = None) -> list[HmaBank]:
        return parse_banks(await self._get_json("/c/banks", None, within))

    async def index_status(self, within: float | None = None) -> dict[str, IndexStatus]:
        return parse_index_status(await self._get_json("/m/index/status", None, within))

    async def status(self, within: float | None = None) -> HmaStatus:
        """``GET /status``: 200 I-AM-ALIVE, or 503 INDEX-NOT-LOADED / INDEX-STALE."""
        try:
            response = await self._get("/status", None, within)
        except HmaCallError as exc:
            return HmaStatus(ready=False, detail=exc.detail, reachable=False)
        text = response.text.strip()[:MESSAGE_LIMIT]
        if response.status == 200:
            return HmaStatus(ready=True, detail=text or "I-AM-ALIVE")
        return HmaStatus(ready=False, detail=f"{response.status} {text}".strip())

    async def live(self, within: float | None = None) -> None:
        """``GET /status/live``: raises unless HMA's process answers 200."""
        response = await self._get("/status/live", None, within)
        self._raise_for_status("/status/live", response)
