"""Uploads through the real gate on a real port: what the client sees and what reached the upstream."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import brotli
import pytest
from yarl import URL

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from tests.integration.conftest import GateFactory
from tests.support import images
from tests.support.cids import cid_of
from tests.support.raw_http import start_upload
from tests.support.scrape import sample, settled_sample
from tests.support.tokens import ALICE_BEARER
from tests.support.upstream import RecordingUpstream

AUTH = {"Authorization": ALICE_BEARER}
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
Upstream = tuple[RecordingUpstream, str]


def pdq_of(data: bytes) -> str:
    return hash_bytes(data, HashOptions()).pdq[0].hex


async def post(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        hdrs = {**AUTH, "Content-Type": "image/jpeg", **(headers or {})}
        async with s.post(url, data=data, headers=hdrs) as r:
            return r.status, await r.json(content_type=None)


async def test_clean_image_is_forwarded_byte_identical(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    body = images.jpeg("coffee.png")
    status, answer = await post(gate.url + UPLOAD, body)
    assert status == 200
    assert answer["blob"]["ref"]["$link"] == cid_of(body)
    [seen] = rec.uploads()
    assert seen.body == body
    assert seen.headers["Content-Length"] == str(len(body))
    assert seen.headers["Authorization"] == AUTH["Authorization"]
    assert seen.raw_path == UPLOAD


async def test_upstream_answer_is_relayed_unchanged(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    rec.status = 401
    rec.extra_headers = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n-123"}
    gate = await start_gate()
    async with aiohttp.ClientSession() as s:
        async with s.post(gate.url + UPLOAD, data=images.jpeg(), headers=AUTH) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == 'DPoP error="use_dpop_nonce"'
            assert r.headers["DPoP-Nonce"] == "n-123"


@pytest.mark.parametrize(
    ("variant", "make"),
    [
        ("exact", images.jpeg),
        ("near-duplicate", images.near_duplicate),
    ],
)
async def test_banked_image_is_rejected_and_upstream_sees_nothing(
    start_gate: GateFactory, upstream: Upstream, variant: str, make: Callable[[], bytes]
) -> None:
    rec, _ = upstream
    original = images.jpeg()
    gate = await start_gate(banks={"blocklist": f"pdq,{pdq_of(original)},test"})
    status, answer = await post(gate.url + UPLOAD, make())
    assert (status, answer) == (400, {"error": "BlobRejected", "message": "rejected by policy"})
    assert rec.uploads() == []


async def test_exact_sha256_bank_rejects(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    body = images.noise_png()
    gate = await start_gate(banks={"blocklist": f"sha256,{hashlib.sha256(body).hexdigest()},x"})
    status, answer = await post(gate.url + UPLOAD, body)
    assert status == 400 and answer["error"] == "BlobRejected"
    assert rec.uploads() == []


async def test_review_bank_quarantines(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate(banks={"review": f"pdq,{pdq_of(images.jpeg())},t"})
    status, answer = await post(gate.url + UPLOAD, images.jpeg())
    assert (status, answer) == (400, {"error": "BlobHeld", "message": "held for review"})
    assert rec.uploads() == []


async def test_rotated_copy_needs_dihedral(start_gate: GateFactory, upstream: Upstream) -> None:
    from tests.integration.conftest import POLICY

    rec, _ = upstream
    banks = {"blocklist": f"pdq,{pdq_of(images.encode(images.photo(), 'PNG'))},t"}
    gate = await start_gate(banks=banks)
    assert (await post(gate.url + UPLOAD, images.rotated()))[0] == 200
    dihedral = await start_gate(policy=POLICY + "\n[hashing]\ndihedral = true\n", banks=banks)
    status, answer = await post(dihedral.url + UPLOAD, images.rotated())
    assert status == 400 and answer["error"] == "BlobRejected"
    assert len(rec.uploads()) == 1  # only the first, non-dihedral gate forwarded it


@pytest.mark.parametrize(
    "path",
    [
        "/xrpc/com.atproto.repo.uploadBlob",
        "/xrpc/com.atproto.repo.uploadblob",
        "/XRPC/com.atproto.repo.uploadBlob",
        "/XRPC/COM.ATPROTO.REPO.UPLOADBLOB",
        "/xrpc/com.atproto.repo.uploadBlob/",
        "/xrpc/com.atproto.repo.uploadBlob?x=1",
        "/xrpc/com.atproto.repo.uploadBlob/?x=1&y",
        "/xrpc/com.atproto.repo.uploadBl%6Fb",
        "//xrpc//com.atproto.repo.uploadBlob",
    ],
)
async def test_every_path_variant_is_intercepted(
    start_gate: GateFactory, upstream: Upstream, path: str
) -> None:
    rec, _ = upstream
    body = images.noise_png()
    gate = await start_gate(banks={"blocklist": f"sha256,{hashlib.sha256(body).hexdigest()},x"})
    # encoded=True: sent as spelt (a plain str URL would be normalised by the client: %6F -> o).
    target = URL(gate.url + path, encoded=True)
    async with aiohttp.ClientSession() as s, s.post(target, data=body, headers=AUTH) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "BlobRejected"
    # Only the empty-body probe reached the PDS, on the path exactly as the client spelt it.
    assert rec.uploads() == [] and [p.raw_path for p in rec.probes()] == [path]


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("deflate", zlib.compress),
        ("br", brotli.compress),
        ("gzip, br", lambda b: brotli.compress(gzip.compress(b))),
        ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
        ("Br, Deflate", lambda b: zlib.compress(brotli.compress(b))),
    ],
)
async def test_encoded_bodies_are_decoded_hashed_and_forwarded_identity(
    start_gate: GateFactory, upstream: Upstream, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    rec, _ = upstream
    body = images.jpeg("chelsea.png")
    gate = await start_gate()
    status, answer = await post(gate.url + UPLOAD, encode(body), {"Content-Encoding": encoding})
    assert status == 200
    [seen] = rec.uploads()
    assert seen.body == body
    assert "Content-Encoding" not in seen.headers
    assert seen.headers["Content-Length"] == str(len(body))
    assert answer["blob"]["ref"]["$link"] == cid_of(body)


async def test_encoded_banked_image_is_still_caught(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    body = images.noise_png()
    gate = await start_gate(banks={"blocklist": f"sha256,{hashlib.sha256(body).hexdigest()},x"})
    status, _ = await post(gate.url + UPLOAD, gzip.compress(body), {"Content-Encoding": "gzip"})
    assert status == 400 and rec.uploads() == []
    [probe] = rec.probes()  # asked with no body, so with no encoding either
    assert "Content-Encoding" not in probe.headers and probe.headers["Content-Length"] == "0"


async def test_gzip_bomb_is_413(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_MAX_UPLOAD_BYTES="1M")
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KB
    assert len(bomb) < 200_000
    status, answer = await post(gate.url + UPLOAD, bomb, {"Content-Encoding": "gzip"})
    assert (status, answer["error"]) == (413, "PayloadTooLarge")
    assert rec.seen == []


async def test_brotli_bomb_is_413(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_MAX_UPLOAD_BYTES="1M")
    status, answer = await post(
        gate.url + UPLOAD, brotli.compress(b"\0" * (32 * 1024 * 1024)), {"Content-Encoding": "br"}
    )
    assert (status, answer["error"]) == (413, "PayloadTooLarge")
    assert rec.seen == []


async def test_unknown_encoding_is_415(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    status, answer = await post(gate.url + UPLOAD, images.jpeg(), {"Content-Encoding": "bogus"})
    assert (status, answer) == (
        415,
        {"error": "UnsupportedMediaType", "message": "unsupported content-encoding"},
    )
    assert rec.seen == []


async def test_corrupt_gzip_is_400(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    status, answer = await post(gate.url + UPLOAD, b"\x1f\x8bnot really gzip", {"Content-Encoding": "gzip"})
    assert (status, answer["error"]) == (400, "InvalidRequest")
    assert rec.seen == []


async def test_oversize_by_content_length_is_413_before_reading(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_MAX_UPLOAD_BYTES="1M")
    host, port = gate.public
    reader, writer = await __import__("asyncio").open_connection(host, port)
    # Announce 50 MiB but send only the headers: the gate must answer without waiting for the body.
    writer.write(
        f"POST {UPLOAD} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
        f"Content-Type: image/png\r\nContent-Length: {50 * 1024 * 1024}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await __import__("asyncio").wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 413")
    writer.close()
    assert rec.seen == []


async def test_oversize_chunked_stream_is_cut_off_with_413(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_MAX_UPLOAD_BYTES="1M")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"\xff" * 65536  # 4 MiB in total, no Content-Length

    async with aiohttp.ClientSession() as s, s.post(gate.url + UPLOAD, data=chunks(), headers=AUTH) as r:
        assert r.status == 413
        assert (await r.json())["error"] == "PayloadTooLarge"
    assert rec.seen == []


async def test_chunked_clean_upload_is_forwarded_with_length(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    gate = await start_gate()
    body = images.jpeg("coffee.png")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    async with aiohttp.ClientSession() as s, s.post(gate.url + UPLOAD, data=chunks(), headers=AUTH) as r:
        assert r.status == 200
    [seen] = rec.uploads()
    assert seen.body == body and seen.headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in seen.headers


async def test_empty_body_is_forwarded(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    status, answer = await post(gate.url + UPLOAD, b"")
    assert status == 200, answer
    assert answer["blob"]["size"] == 0
    [seen] = rec.seen
    assert seen.body == b"" and seen.headers["Content-Length"] == "0"


async def test_no_authorization_gets_auth_missing_unread(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    body = images.noise_png()
    gate = await start_gate(banks={"blocklist": f"sha256,{hashlib.sha256(body).hexdigest()},x"})
    async with aiohttp.ClientSession() as s:
        async with s.post(gate.url + UPLOAD, data=body, headers={"Content-Type": "image/png"}) as r:
            assert r.status == 401
            assert await r.json() == {"error": "AuthMissing", "message": "Authentication Required"}
    assert rec.seen == []


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("corrupt", lambda: b"\xff\xd8\xff\xe0" + b"garbage" * 100, 400),
        ("truncated", lambda: images.jpeg()[:3000], 400),
        ("flat", images.flat, 200),  # low quality → on_low_quality = forward
        ("not-an-image", lambda: b"%PDF-1.4 this is not a picture" * 10, 200),  # unscannable → forward
    ],
)
async def test_unhashable_and_unscannable_follow_the_policy(
    start_gate: GateFactory, upstream: Upstream, name: str, make: Callable[[], bytes], expected: int
) -> None:
    rec, _ = upstream
    gate = await start_gate()
    status, answer = await post(gate.url + UPLOAD, make(), {"Content-Type": "image/png"})
    assert status == expected, answer
    if expected == 400:
        assert answer["error"] == "BlobHeld"  # on_unhashable = quarantine
        assert rec.uploads() == []
    else:
        assert len(rec.uploads()) == 1


async def test_decompression_bomb_image_is_unhashable(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_MAX_IMAGE_PIXELS="10000")
    big = images.noise_png(size=200)  # 40k pixels > 10k limit
    status, answer = await post(gate.url + UPLOAD, big)
    assert (status, answer["error"]) == (400, "BlobHeld")
    assert rec.uploads() == []


async def test_upstream_down_is_502(start_gate: GateFactory) -> None:
    gate = await start_gate(GATE_UPSTREAM="http://127.0.0.1:9")
    status, answer = await post(gate.url + UPLOAD, images.jpeg())
    assert (status, answer["error"]) == (502, "UpstreamFailure")
    async with aiohttp.ClientSession() as s, s.get(gate.url + "/xrpc/_health") as r:
        assert r.status == 502 and (await r.json())["error"] == "UpstreamFailure"


async def test_upstream_slow_is_504(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    rec.delay = 3
    gate = await start_gate(GATE_UPSTREAM_TIMEOUT="0.5")
    status, answer = await post(gate.url + UPLOAD, images.jpeg())
    assert (status, answer["error"]) == (504, "UpstreamTimeout")
    assert len(rec.uploads()) == 1  # seen once, never retried


async def test_memory_budget_answers_503_with_retry_after(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    rec, _ = upstream
    gate = await start_gate(GATE_MAX_UPLOAD_BYTES="1M", GATE_MEMORY_BUDGET_BYTES="2M")
    host, port = gate.public
    # Two slow uploads have sent 900 KiB of their 1000 KiB each and hold them while the rest trickles in.
    slow = [await start_upload(host, port, 1000 * 1024, b"\0" * (900 * 1024)) for _ in range(2)]
    assert await settled_sample(gate.admin_url, "upload_gate_buffered_bytes", 1800 * 1024) == 1800 * 1024
    async with aiohttp.ClientSession() as s:
        async with s.post(gate.url + UPLOAD, data=b"\0" * (300 * 1024), headers=AUTH) as r:
            assert r.status == 503
            assert r.headers["Retry-After"].isdigit()
            assert (await r.json())["error"] == "Overloaded"
    for _, writer in slow:
        writer.close()
    assert rec.uploads() == []


async def test_the_memory_budget_counts_the_hashing_workers_copy(
    start_gate: GateFactory, upstream: Upstream
) -> None:
    """A body read whole is held twice while it is hashed (the gate's copy and its worker's): both
    are reserved, so a body that fits the budget once but not twice is refused, and never forwarded."""
    rec, _ = upstream
    gate = await start_gate(GATE_MAX_UPLOAD_BYTES="1M", GATE_MEMORY_BUDGET_BYTES="2M")
    host, port = gate.public
    _, writer = await start_upload(host, port, 1000 * 1024, b"\0" * (900 * 1024))  # holds 900 KiB
    assert await settled_sample(gate.admin_url, "upload_gate_buffered_bytes", 900 * 1024) == 900 * 1024
    refused, taken = b"\1" * (600 * 1024), b"\2" * (500 * 1024)
    async with aiohttp.ClientSession() as s:
        # 900 + 600 KiB read fit in 2 MiB; with the worker's 600 KiB they do not, and nothing else is
        # being hashed whose copy could come back: refused.
        async with s.post(gate.url + UPLOAD, data=refused, headers=AUTH) as r:
            assert (r.status, (await r.json())["error"]) == (503, "Overloaded")
            assert r.headers["Retry-After"].isdigit()
        async with s.post(gate.url + UPLOAD, data=taken, headers=AUTH) as r:  # 900 + 2 × 500 KiB: fits
            assert r.status == 200, await r.text()
    writer.close()
    assert [u.body for u in rec.uploads()] == [taken]
    assert await sample(gate.admin_url, "upload_gate_buffered_bytes") == 0  # every copy given back


async def test_repeat_upload_reuses_the_verdict(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    body = images.jpeg("coffee.png")
    before = cache_hits()
    assert (await post(gate.url + UPLOAD, body))[0] == 200
    assert cache_hits() == before
    assert (await post(gate.url + UPLOAD, body))[0] == 200
    assert cache_hits() == before + 1
    assert [s.body for s in rec.uploads()] == [body, body]  # the repeat is still forwarded


def cache_hits() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("upload_gate_verdict_cache_hits_total") or 0.0
