"""How the gate's own answers look on the wire: like the PDS's.

The PDS (``@atproto/pds``, Express with the ``cors`` middleware) sends ``Access-Control-Allow-Origin: *``
on every XRPC answer and answers preflights itself (``OPTIONS`` passes through the gate). A browser
client — bsky.app is one — can read an answer only if it carries that header: without it the page
sees ``TypeError: Failed to fetch`` instead of the gate's ``UploadRejected``. So every answer the gate
makes itself gets the header here, in one ``on_response_prepare`` hook that every answer passes
through (errors added later inherit it). Its JSON is compact as Express writes it, its reason phrases
are Node's, and no answer names the gate's software or version: aiohttp's ``Server`` banner is
dropped from every answer, relayed ones included (the PDS sends no ``Server`` header).

Trust boundary: an answer relayed from the PDS (marked ``RELAYED`` by ``gate.proxy.upstream``) keeps
exactly the CORS headers the PDS chose — its OAuth pages deliberately send none, and the gate must not
widen them.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http import SERVER_SOFTWARE

# Set on an answer that is the PDS's own (its status, headers and body relayed unchanged).
RELAYED = web.ResponseKey("relayed", bool)

ALLOW_ORIGIN = "Access-Control-Allow-Origin"
EXPOSE_HEADERS = "Access-Control-Expose-Headers"
# A browser script may read only "safelisted" response headers unless exposed: the gate's 503s say
# when to retry, and a block answer to a DPoP upload carries the PDS's next nonce (the PDS exposes
# DPoP-Nonce and WWW-Authenticate the same way on its own answers).
EXPOSED = ("Retry-After", "DPoP-Nonce")

# Node's http.STATUS_CODES (what Express sends) where it differs from Python's phrase for the status.
NODE_REASONS = {413: "Payload Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable"}


def compact_json(value: Any) -> str:
    """``JSON.stringify``'s layout: no spaces, non-ASCII written as is (the body is UTF-8)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def xrpc_json(body: dict[str, str], status: int, headers: dict[str, str] | None = None) -> web.Response:
    """An answer the gate makes itself, shaped like the PDS's (CORS is added on prepare)."""
    return web.json_response(
        body, status=status, reason=NODE_REASONS.get(status), headers=headers, dumps=compact_json
    )


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """The last word on every answer's headers, just before they are written."""
    if response.headers.get(hdrs.SERVER) == SERVER_SOFTWARE:
        del response.headers[hdrs.SERVER]
    if response.get(RELAYED) or response.status == 101:
        return
    with_cors(response.headers)


def with_cors(headers: MutableMapping[str, str]) -> None:
    """CORS on an answer the gate makes itself (any origin, as the PDS allows; the headers a browser
    client must read exposed), unless the answer says otherwise already."""
    headers.setdefault(ALLOW_ORIGIN, "*")
    exposed = [h for h in EXPOSED if h in headers]
    if exposed and EXPOSE_HEADERS not in headers:
        headers[EXPOSE_HEADERS] = ", ".join(exposed)


async def no_banner(request: web.Request, response: web.StreamResponse) -> None:
    """For the private listener (metrics, health, review): no software banner, and no CORS."""
    if response.headers.get(hdrs.SERVER) == SERVER_SOFTWARE:
        del response.headers[hdrs.SERVER]


# What the PDS answers for a blob it does not have (InvalidRequestError('Blob not found') in
# @atproto/pds api/com/atproto/sync/getBlob.js); a blob the gate withholds gets exactly this.
BLOB_NOT_FOUND = {"error": "InvalidRequest", "message": "Blob not found"}


def blob_not_found() -> web.Response:
    return xrpc_json(BLOB_NOT_FOUND, 400)
