"""The labeler's two public XRPC methods on the gate's public listener: ``com.atproto.label.queryLabels``
and the ``com.atproto.label.subscribeLabels`` websocket.

Trust boundary: both are public and unauthenticated, as every labeler's are — they publish what the
labeler has decided, nothing more (labels name record URIs and values, never hashes, banks or
decisions). Their inputs are bounded here (limit, cursor, pattern count and length, subscriber count)
and a bad one is a well-formed XRPC error.

subscribeLabels speaks the atproto event-stream framing (atproto.com/specs/event-stream): each message is
two concatenated DAG-CBOR objects, a header ``{op: 1, t: "#labels"}`` and a body ``{seq, labels}``; an
error is ``{op: -1}`` + ``{error, message}`` and then the socket closes. With ``cursor`` the stream
starts after that sequence number (0: from the first label), reads the log forward in pages and then
stays live; without one it starts live. Each subscriber reads Postgres at its own pace, so a slow one
holds no queue in the gate; one that takes no frame for ``SEND_TIMEOUT`` is cut (``ConsumerTooSlow``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import libipld
from aiohttp import WSCloseCode, web

from gate import metrics
from gate.errors import InvalidRequest, XrpcError
from gate.labels.label import Label
from gate.labels.labeler import Labeler
from gate.labels.store import UriPatterns
from gate.store.pool import StoreUnavailable

log = logging.getLogger(__name__)

QUERY = "/xrpc/com.atproto.label.queryLabels"
SUBSCRIBE = "/xrpc/com.atproto.label.subscribeLabels"
LIMIT_DEFAULT, LIMIT_MAX = 50, 250  # the lexicon's
MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 2048
PAGE = 500  # labels read from Postgres per step of a subscriber's backfill
SEND_TIMEOUT = 30.0

LABELER = web.AppKey("labeler", Labeler)
SOCKETS = web.AppKey("label_sockets", set[web.WebSocketResponse])


class LabelsUnavailable(XrpcError):
    status = 503
    error = "NotReady"  # what other atproto services answer while their store is unavailable
    default_message = "Labels are unavailable right now; retry shortly"
    retry_after = 5


def _int(raw: str | None, name: str, low: int, high: int, default: int | None) -> int | None:
    if raw is None:
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise InvalidRequest(f"{name} must be an integer from {low} to {high}")
    return int(raw)


def parse_patterns(raw: list[str]) -> UriPatterns:
    if not raw:
        raise InvalidRequest('Error: Params must have the property "uriPatterns"')
    if len(raw) > MAX_PATTERNS or any(len(p) > MAX_PATTERN_CHARS for p in raw):
        raise InvalidRequest(f"at most {MAX_PATTERNS} uriPatterns of at most {MAX_PATTERN_CHARS} characters")
    exact: list[str] = []
    prefixes: list[str] = []
    for pattern in raw:
        star = pattern.find("*")
        if star == -1:
            exact.append(pattern)
        elif star != len(pattern) - 1:
            raise InvalidRequest(f"invalid pattern: {pattern} (a * may only end it)")
        else:
            prefixes.append(pattern[:-1])
    return UriPatterns(tuple(exact), tuple(prefixes))


async def query_labels(request: web.Request) -> web.Response:
    labeler = request.app[LABELER]
    try:
        patterns = parse_patterns(request.query.getall("uriPatterns", []))
        limit = _int(request.query.get("limit"), "limit", 1, LIMIT_MAX, LIMIT_DEFAULT)
        after = _int(request.query.get("cursor"), "cursor", 0, 2**63 - 1, 0)
    except InvalidRequest:
        metrics.LABEL_REQUESTS.labels("query", "invalid").inc()
        raise
    assert limit is not None and after is not None
    try:
        rows = await labeler.store.query(patterns, request.query.getall("sources", []), after, limit)
        labels = await labeler.signed(rows)
    except StoreUnavailable:
        metrics.LABEL_REQUESTS.labels("query", "unavailable").inc()
        raise LabelsUnavailable() from None
    metrics.LABEL_REQUESTS.labels("query", "ok").inc()
    body: dict[str, object] = {"labels": [label.to_json() for label in labels]}
    if rows:
        body["cursor"] = str(rows[-1].seq)
    return web.json_response(body)


def frame(t: str, body: dict[str, object]) -> bytes:
    header: bytes = libipld.encode_dag_cbor({"op": 1, "t": t})
    return header + libipld.encode_dag_cbor(body)


def error_frame(error: str, message: str) -> bytes:
    encoded: bytes = libipld.encode_dag_cbor({"op": -1}) + libipld.encode_dag_cbor(
        {"error": error, "message": message}
    )
    return encoded


def labels_frame(seq: int, labels: list[Label]) -> bytes:
    return frame("#labels", {"seq": seq, "labels": [label.to_cbor_obj() for label in labels]})


async def subscribe_labels(request: web.Request) -> web.StreamResponse:
    labeler: Labeler = request.app[LABELER]
    sockets = request.app[SOCKETS]
    try:
        cursor = _int(request.query.get("cursor"), "cursor", 0, 2**63 - 1, None)
    except InvalidRequest:
        metrics.LABEL_REQUESTS.labels("subscribe", "invalid").inc()
        raise
    if labeler.subscribers >= labeler.max_subscribers:
        metrics.LABEL_REQUESTS.labels("subscribe", "refused").inc()
        raise LabelsUnavailable("Too many label subscribers; retry later")
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    sockets.add(ws)
    labeler.subscribers += 1
    metrics.LABEL_SUBSCRIBERS.inc()
    # The client sends nothing we need; reading is how its close (or a dead peer) is noticed.
    reader = asyncio.create_task(_drain_incoming(ws))
    try:
        await _stream(ws, labeler, cursor, reader)
        metrics.LABEL_REQUESTS.labels("subscribe", "ok").inc()
    except StoreUnavailable:
        metrics.LABEL_REQUESTS.labels("subscribe", "unavailable").inc()
        await _send_error(ws, "NotReady", "Labels are unavailable right now; reconnect shortly")
    except TimeoutError:
        metrics.LABEL_REQUESTS.labels("subscribe", "slow").inc()
        await _send_error(ws, "ConsumerTooSlow", "Stream consumer too slow")
    except (ConnectionError, RuntimeError):
        pass  # the client went away mid-send
    finally:
        reader.cancel()
        sockets.discard(ws)
        labeler.subscribers -= 1
        metrics.LABEL_SUBSCRIBERS.dec()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def _stream(
    ws: web.WebSocketResponse, labeler: Labeler, cursor: int | None, reader: asyncio.Task[None]
) -> None:
    await labeler.refresh()
    if cursor is not None and cursor > labeler.head:
        await _send_error(ws, "FutureCursor", "Cursor in the future.")
        return
    last = labeler.head if cursor is None else cursor
    while not reader.done():
        rows = await labeler.store.since(last, PAGE)
        if rows:
            for row, label in zip(rows, await labeler.signed(rows), strict=True):
                await asyncio.wait_for(ws.send_bytes(labels_frame(row.seq, [label])), SEND_TIMEOUT)
                last = row.seq
            continue
        # Caught up: wait for the poll to see a later label, or for the client to leave.
        waiting = asyncio.create_task(labeler.wait_beyond(last))
        await asyncio.wait({waiting, reader}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()


async def _drain_incoming(ws: web.WebSocketResponse) -> None:
    async for _ in ws:
        pass


async def _send_error(ws: web.WebSocketResponse, error: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.send_bytes(error_frame(error, message)), 5)
        await ws.close(
            code=WSCloseCode.POLICY_VIOLATION if error != "NotReady" else WSCloseCode.TRY_AGAIN_LATER
        )


async def close_sockets(app: web.Application) -> None:
    """On shutdown: every subscriber is told the server is going away (it reconnects with its cursor)."""
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


def install(app: web.Application, labeler: Labeler) -> None:
    """Serve the labeler's methods on ``app`` (before its catch-all route)."""
    app[LABELER] = labeler
    app[SOCKETS] = set()
    app.router.add_get(QUERY, query_labels)
    app.router.add_get(SUBSCRIBE, subscribe_labels)
    app.on_shutdown.append(close_sockets)
