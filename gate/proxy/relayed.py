"""A PDS answer given back to the client, by either client (aiohttp's, or the lane for bodiless GETs):
whole in one write, or streamed as it arrives; and the PDS's failures before anything was sent (on
either client, or in a websocket's handshake), counted and turned into the gate's 502/504.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from multidict import CIMultiDict

from gate import metrics
from gate.answers import RELAYED
from gate.errors import UpstreamFailure, UpstreamTimeout


def timed_out() -> UpstreamTimeout:
    """The PDS did not accept within GATE_UPSTREAM_CONNECT_TIMEOUT or answer within GATE_UPSTREAM_TIMEOUT:
    counted, for the caller to raise (504)."""
    metrics.UPSTREAM_ERRORS.labels("timeout").inc()
    return UpstreamTimeout()


def unreachable() -> UpstreamFailure:
    """The PDS could not be reached or its answer not read, before anything was sent: counted, for the
    caller to raise (a clear 502 rather than a cut connection)."""
    metrics.UPSTREAM_ERRORS.labels("unreachable").inc()
    return UpstreamFailure()


def relayed(status: int, reason: str | None, headers: CIMultiDict[str], body: bytes) -> web.Response:
    """The answer read whole, given back in one write with its headers (already ``end_to_end``)."""
    # aiohttp adds what the PDS's answer lacks of Date and, on a body, Content-Type
    # (application/octet-stream, RFC 9110 §8.3: a browser then downloads rather than sniffs); the
    # PDS sends both on every answer with a body. Its Server banner is dropped (gate.answers).
    out = web.Response(status=status, reason=reason, body=body, headers=headers)
    out[RELAYED] = True
    return out


async def streamed(
    request: web.BaseRequest,
    status: int,
    reason: str | None,
    headers: CIMultiDict[str],
    chunks: AsyncIterator[bytes],
    cut: tuple[type[BaseException], ...],
) -> web.StreamResponse:
    """The answer streamed as ``chunks`` arrive; ``cut``: the client's errors for a PDS that ended the
    body early, after which the client's connection is cut too."""
    out = web.StreamResponse(status=status, reason=reason)
    out[RELAYED] = True
    out.headers.extend(headers)
    await out.prepare(request)
    try:
        async for chunk in chunks:
            await out.write(chunk)
    except cut:
        # Headers are already sent: the best we can do is cut the connection, like the PDS did.
        if request.transport is not None:
            request.transport.close()
        return out
    await out.write_eof()
    return out
