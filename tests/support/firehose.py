"""A generated ``com.atproto.sync.subscribeRepos`` stream for tests and the benchmark: commit frames whose
records reference blobs, served by a real aiohttp websocket on a real port.

Every CBOR object and CID is made by libipld (the atproto SDK's own IPLD library); the CAR container
around the record blocks is the one piece written here, because no Python library writes CARs: a varint
length, the DAG-CBOR header, then each block as varint length + CID bytes + block bytes (the CARv1
spec). The watcher reads it with the SDK's reader, so a wrong one fails loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import libipld
from aiohttp import web

from tests.support.serving import serving

DAG_CBOR, RAW, SHA256 = 0x71, 0x55, 0x12


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def cid_bytes(data: bytes, codec: int) -> bytes:
    return bytes([1, codec, SHA256, 32]) + hashlib.sha256(data).digest()


def blob_ref(data: bytes, mime: str = "image/png") -> dict[str, Any]:
    # libipld encodes bytes that are a CID as a link (tag 42), as a record's blob ref is.
    return {"$type": "blob", "ref": cid_bytes(data, RAW), "mimeType": mime, "size": len(data)}


def blob_cid(data: bytes) -> str:
    return libipld.encode_cid(cid_bytes(data, RAW))


def car(blocks: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """A CARv1 of DAG-CBOR ``blocks`` (the first is its root) and each block's CID bytes."""
    cids = [cid_bytes(b, DAG_CBOR) for b in blocks]
    header = libipld.encode_dag_cbor({"version": 1, "roots": [cids[0]]})
    out = bytearray(varint(len(header)) + header)
    for cid, block in zip(cids, blocks, strict=True):
        out += varint(len(cid) + len(block)) + cid + block
    return bytes(out), cids


def frame(t: str, body: dict[str, Any]) -> bytes:
    return bytes(libipld.encode_dag_cbor({"op": 1, "t": t})) + bytes(libipld.encode_dag_cbor(body))


def commit(seq: int, repo: str, records: dict[str, dict[str, Any]], *, at: datetime | None = None) -> bytes:
    """A #commit creating ``records`` (path "collection/rkey" → record) in ``repo``."""
    commit_block = libipld.encode_dag_cbor({"did": repo, "version": 3, "rev": f"rev{seq}", "data": None})
    blocks = [commit_block, *(libipld.encode_dag_cbor(r) for r in records.values())]
    data, cids = car(blocks)
    ops = [
        {"action": "create", "path": path, "cid": cid} for path, cid in zip(records, cids[1:], strict=True)
    ]
    return frame(
        "#commit",
        {
            "seq": seq,
            "rebase": False,
            "tooBig": False,
            "repo": repo,
            "commit": cids[0],
            "rev": f"rev{seq}",
            "since": None,
            "blocks": data,
            "ops": ops,
            "blobs": [],
            "time": (at or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
    )


def post(data: bytes, mime: str = "image/png") -> dict[str, Any]:
    return {
        "$type": "app.bsky.feed.post",
        "text": "x",
        "createdAt": "2026-12-05T00:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob_ref(data, mime)}]},
    }


def did_doc(did: str, pds: str) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "alsoKnownAs": [],
        "verificationMethod": [],
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds}],
    }


@dataclass
class Network:
    """A firehose, a PLC directory and PDSes, all one aiohttp app on one real port."""

    frames: list[bytes] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)  # CID → bytes the PDS serves
    dids: set[str] = field(default_factory=set)  # DIDs the PLC directory knows
    refusing: set[str] = field(default_factory=set)  # DIDs whose getBlob answers 500
    lying: set[str] = field(default_factory=set)  # DIDs whose getBlob answers other bytes
    fetches: list[str] = field(default_factory=list)
    url: str = ""
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    hold: asyncio.Event | None = None  # when given, frames are sent once it is set (a test's first scrape)
    # When given, getBlob sends its headers (and Content-Length) at once and its body once it is set: the
    # watcher knows each blob's size, and either holds its peak in the memory budget or waits for room.
    bodies: asyncio.Event | None = None

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        cursor = int(request.query.get("cursor", "0"))
        self.connected.set()
        if self.hold is not None:
            await self.hold.wait()
        sent = 0
        for raw in self.frames:  # frames after the cursor (a frame without a seq is always sent)
            seq = _seq(raw)
            if seq is None or seq > cursor:
                await ws.send_bytes(raw)
                sent += 1
        async for _ in ws:
            pass
        return ws

    async def plc(self, request: web.Request) -> web.Response:
        did = request.match_info["did"]
        if did not in self.dids:
            return web.json_response({"message": "DID not registered"}, status=404)
        return web.Response(text=json.dumps(did_doc(did, self.url)), content_type="application/json")

    async def get_blob(self, request: web.Request) -> web.StreamResponse:
        did, cid = request.query["did"], request.query["cid"]
        self.fetches.append(cid)
        if did in self.refusing:
            return web.json_response({"error": "InternalServerError"}, status=500)
        body = self.blobs.get(cid)
        if body is None:
            return web.json_response({"error": "InvalidRequest", "message": "Blob not found"}, status=400)
        if did in self.lying:
            body = body + b"\x00"
        if self.bodies is None:
            return web.Response(body=body, content_type="application/octet-stream")
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(body)
        await response.prepare(request)
        await self.bodies.wait()
        with contextlib.suppress(ConnectionResetError):  # a watcher that refused the size has gone
            await response.write(body)
            await response.write_eof()
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/xrpc/com.atproto.sync.subscribeRepos", self.subscribe)
        app.router.add_get("/xrpc/com.atproto.sync.getBlob", self.get_blob)
        app.router.add_get("/plc/{did}", self.plc)
        return app


def _seq(raw: bytes) -> int | None:
    try:
        _, body = libipld.decode_dag_cbor_multi(raw)
    except ValueError:
        return None
    seq = body.get("seq") if isinstance(body, dict) else None
    return seq if isinstance(seq, int) else None


async def running(network: Network) -> AsyncGenerator[Network, None]:
    async with serving(network.app()) as url:
        network.url = url
        yield network
