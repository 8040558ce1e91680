"""The gate's own answers on the wire, as a browser and a PDS client read them: the PDS's CORS header,
compact JSON, Node's reason phrases, no software banner — and the PDS's relayed answers untouched."""

from __future__ import annotations

import gzip
import hashlib
import json

import aiohttp
import pytest
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDictProxy

from gate.answers import compact_json
from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from tests.integration.conftest import GateFactory
from tests.support import images
from tests.support.cids import cid_of
from tests.support.raw_http import exchange, read_response, start_upload
from tests.support.scrape import settled_sample
from tests.support.upstream import RecordingUpstream

Upstream = tuple[RecordingUpstream, str]
Headers = CIMultiDictProxy[str]
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
AUTH = {"Authorization": "Bearer t", "Content-Type": "image/png"}
ORIGIN = {"Origin": "https://bsky.app"}  # what a web client's cross-origin fetch sends


async def answer(
    session: aiohttp.ClientSession, method: str, url: str, data: bytes | None, headers: dict[str, str]
) -> tuple[int, str, Headers, bytes]:
    async with session.request(method, url, data=data, headers={**ORIGIN, **headers}) as r:
        return r.status, r.reason or "", r.headers, await r.read()


def assert_gate_answer(got: tuple[int, str, Headers, bytes], status: int, reason: str, error: str) -> None:
    code, phrase, headers, body = got
    assert (code, phrase) == (status, reason), body
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Server" not in headers
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    doc = json.loads(body)
    assert doc["error"] == error
    # Compact, as Express writes JSON: byte for byte what JSON.stringify would send.
    assert body == json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


async def test_every_gate_made_answer_is_readable_cross_origin(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    banned, held = images.noise_png(1), images.noise_png(2)
    gate = await start_gate(
        banks={
            "blocklist": f"sha256,{hashlib.sha256(banned).hexdigest()},x",
            "review": "\n".join(f"pdq,{p.hex},x" for p in hash_bytes(held, HashOptions()).pdq),
        },
        GATE_MAX_UPLOAD_BYTES="64K",
    )
    cases: list[tuple[str, bytes | None, dict[str, str], int, str, str]] = [
        # (path, body, headers, status, reason phrase, XRPC error)
        (UPLOAD, banned, {"Content-Type": "image/png"}, 401, "Unauthorized", "AuthMissing"),
        (UPLOAD, b"\0" * (100 << 10), AUTH, 413, "Payload Too Large", "PayloadTooLarge"),
        (UPLOAD, banned, {**AUTH, "Content-Encoding": "bogus"}, 415, "Unsupported Media Type", "UnsupportedMediaType"),
        (UPLOAD, gzip.compress(banned)[:-9], {**AUTH, "Content-Encoding": "gzip"}, 400, "Bad Request", "InvalidRequest"),
        (UPLOAD, banned, AUTH, 400, "Bad Request", "BlobRejected"),
        (UPLOAD, held, AUTH, 400, "Bad Request", "BlobHeld"),
        # The rejected blob is withheld from getBlob, answered as the PDS answers a missing blob.
        (f"/xrpc/com.atproto.sync.getBlob?did=did:plc:x&cid={cid_of(banned)}", None, {}, 400, "Bad Request", "InvalidRequest"),
    ]  # fmt: skip
    async with aiohttp.ClientSession() as s:
        for path, body, headers, status, reason, error in cases:
            method = "POST" if body is not None else "GET"
            assert_gate_answer(await answer(s, method, gate.url + path, body, headers), status, reason, error)
    # Every one of them was the gate's own answer: the PDS saw only the empty-body probes that asked
    # whether it accepts the caller before the two block verdicts were revealed.
    assert rec.uploads() == [] and len(rec.probes()) == 2 and len(rec.seen) == 2


async def test_upstream_failure_answers_are_readable_too(start_gate: GateFactory) -> None:
    gate = await start_gate(GATE_UPSTREAM="http://127.0.0.1:9")  # nothing listens there
    async with aiohttp.ClientSession() as s:
        got = await answer(s, "GET", gate.url + "/xrpc/_health", None, {})
    assert_gate_answer(got, 502, "Bad Gateway", "UpstreamFailure")


async def test_overloaded_answer_exposes_retry_after(start_gate: GateFactory, upstream: Upstream) -> None:
    gate = await start_gate(GATE_MAX_UPLOAD_BYTES="1M", GATE_MEMORY_BUDGET_BYTES="2M")
    host, port = gate.public
    # Two slow uploads have sent 900 KiB of their megabyte each: held while the rest trickles in.
    slow = [await start_upload(host, port, 1024 * 1024, b"\0" * (900 * 1024)) for _ in range(2)]
    assert await settled_sample(gate.admin_url, "upload_gate_buffered_bytes", 1800 * 1024) == 1800 * 1024
    async with aiohttp.ClientSession() as s:
        got = await answer(s, "POST", gate.url + UPLOAD, b"\0" * (300 * 1024), AUTH)
    for _, writer in slow:
        writer.close()
    assert_gate_answer(got, 503, "Service Unavailable", "Overloaded")
    headers = got[2]
    assert headers["Retry-After"].isdigit()
    assert headers["Access-Control-Expose-Headers"] == "Retry-After"


@pytest.mark.parametrize("pds_cors", [True, False], ids=["pds-sends-cors", "pds-sends-none"])
async def test_relayed_answers_keep_the_pds_headers(
    start_gate: GateFactory, upstream: Upstream, pds_cors: bool
) -> None:
    """The gate adds CORS only to its own answers: where the PDS chose none (its OAuth pages), none."""
    rec, _ = upstream
    rec.extra_headers = {"Access-Control-Allow-Origin": "*", "X-Powered-By": "Express"} if pds_cors else {}
    gate = await start_gate()
    async with aiohttp.ClientSession() as s:
        for method, path, body in (
            ("GET", "/oauth/authorize?x=1", None),  # streamed passthrough
            ("POST", UPLOAD, images.noise_png(3)),  # a clean upload, the PDS's answer relayed
        ):
            status, reason, headers, _ = await answer(s, method, gate.url + path, body, AUTH)
            assert (status, reason) == (200, "OK")
            assert headers.get("Access-Control-Allow-Origin") == ("*" if pds_cors else None)
            assert headers.get("X-Powered-By") == ("Express" if pds_cors else None)
            assert "Server" not in headers
    assert len(rec.seen) == 2


async def test_no_software_banner_on_the_private_listener(start_gate: GateFactory) -> None:
    gate = await start_gate()
    async with aiohttp.ClientSession() as s:
        for path in ("/healthz", "/metrics", "/no-such-page"):
            async with s.get(gate.admin_url + path) as r:
                assert "Server" not in r.headers, (path, r.headers.get("Server"))
                assert "Access-Control-Allow-Origin" not in r.headers  # the private listener is not CORS-open
    assert SERVER_SOFTWARE.startswith("Python/")  # what would otherwise be announced


async def test_answers_given_before_the_body_is_read_are_readable_too(start_gate: GateFactory) -> None:
    """The gate's refusals that never reach the pipeline — a request target it refuses, a body that
    stops (408), one upload too many from an address (429) — pass through the same hook."""
    gate = await start_gate(GATE_BODY_IDLE_TIMEOUT="0.5", GATE_MAX_UPLOADS_PER_IP="1")
    host, port = gate.public
    target = await exchange(
        host, port, "POST", UPLOAD.encode() + b"#x", {"Host": "x", **ORIGIN, **AUTH, "Content-Length": "0"}
    )
    stalled = await start_upload(host, port, 1024, b"\x89", ORIGIN)
    extra = await start_upload(host, port, 1024, b"", ORIGIN)
    too_many = await read_response(extra[0])
    timed_out = await read_response(stalled[0])
    for _, writer in (stalled, extra):
        writer.close()
    for got, status, error in (
        (target, 400, "InvalidRequest"),
        (too_many, 429, "RateLimitExceeded"),
        (timed_out, 408, "RequestTimeout"),
    ):
        assert got.status == status, got
        assert got.headers["access-control-allow-origin"] == "*"
        assert "server" not in got.headers
        assert got.body == compact_json({"error": error, "message": json.loads(got.body)["message"]}).encode()
    assert too_many.headers["access-control-expose-headers"] == "Retry-After"
