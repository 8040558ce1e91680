"""Request targets an HTTP client would never send, on a bare socket to the gate's real port.

The spellings are the ones Node + express (the PDS) route to ``uploadBlob`` (see gate.proxy.target):
absolute-form targets are judged on their path, fragments and backslashes are refused before a byte
of the body is read — the same answer for a banked picture and a clean one — and nothing is a 500.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.integration.conftest import GateFactory
from tests.support import images
from tests.support.raw_http import exchange
from tests.support.upstream import RecordingUpstream

Upstream = tuple[RecordingUpstream, str]
BANKED = images.noise_png(seed=7)
CLEAN = images.noise_png(seed=8)
BANKS = {"blocklist": f"sha256,{hashlib.sha256(BANKED).hexdigest()},banked"}


def upload_headers(body: bytes) -> dict[str, str]:
    return {
        "Host": "pds.example.com",
        "Authorization": "Bearer t",
        "Content-Type": "image/png",
        "Content-Length": str(len(body)),
    }


@pytest.mark.parametrize(
    "target",
    [
        b"http://pds.example.com/xrpc/com.atproto.repo.uploadBlob",
        b"HTTPS://user@pds.example.com:443/XRPC/com.atproto.repo.uploadblob/?x=1",
        b"ftp://h/xrpc/com.atproto.repo.uploadBlob",
    ],
)
async def test_absolute_form_upload_is_judged_on_its_path(
    start_gate: GateFactory, upstream: Upstream, target: bytes
) -> None:
    rec, _ = upstream
    gate = await start_gate(banks=BANKS)
    refused = await exchange(*gate.public, "POST", target, upload_headers(BANKED), BANKED)
    assert (refused.status, refused.json()) == (
        400,
        {"error": "BlobRejected", "message": "rejected by policy"},
    )
    assert rec.uploads() == []  # the banked picture never reached the PDS
    path = target.decode().split("://", 1)[1]
    # Only the empty-body probe did, in origin form like every forward.
    assert [p.raw_path for p in rec.probes()] == [path[path.index("/") :]]

    answer = await exchange(*gate.public, "POST", target, upload_headers(CLEAN), CLEAN)
    assert answer.status == 200, answer.body
    [seen] = rec.uploads()
    assert seen.body == CLEAN
    assert seen.raw_path == path[path.index("/") :]  # forwarded in origin form
    assert seen.headers["Host"] == "pds.example.com"  # the Host header, as for every request


async def test_absolute_form_passthrough(start_gate: GateFactory, upstream: Upstream) -> None:
    rec, _ = upstream
    gate = await start_gate()
    answer = await exchange(
        *gate.public, "GET", b"http://pds.example.com/xrpc/_health?x=1", {"Host": "pds.example.com"}
    )
    assert answer.status == 200
    [seen] = rec.seen
    assert (seen.method, seen.raw_path) == ("GET", "/xrpc/_health?x=1")


# Each of these reaches uploadBlob on the PDS (measured against express 4.22 / Node 20).
NODE_UPLOAD_SPELLINGS = [
    b"/xrpc\\com.atproto.repo.uploadBlob#x",
    b"/xrpc/com.atproto.repo.uploadBlob#x",
    b"/xrpc/com.atproto.repo.uploadBlob?#",
    b"/xrpc/com.atproto.repo.uploadBlob\\#",
    b"//u@h/xrpc/com.atproto.repo.uploadBlob#",
    b"http://h/xrpc\\com.atproto.repo.uploadBlob",
    b"http://h/xrpc/com.atproto.repo.uploadBlob#frag",
]


@pytest.mark.parametrize("target", NODE_UPLOAD_SPELLINGS)
async def test_fragments_and_backslashes_are_refused_unread_alike(
    start_gate: GateFactory, upstream: Upstream, target: bytes
) -> None:
    rec, _ = upstream
    gate = await start_gate(banks=BANKS)
    banked = await exchange(*gate.public, "POST", target, upload_headers(BANKED), BANKED)
    clean = await exchange(*gate.public, "POST", target, upload_headers(CLEAN), CLEAN)
    assert banked.status == 400
    assert banked.json()["error"] == "InvalidRequest"
    assert banked.json()["message"].startswith("Unsupported request target")
    assert (clean.status, clean.body) == (banked.status, banked.body)
    assert rec.seen == []


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", b"/xrpc/_health#top"),
        ("GET", b"/xrpc\\_health"),
        ("OPTIONS", b"*"),
        ("GET", b"h:80"),
        ("GET", b"http:/xrpc/_health"),
        ("GET", b"/xrpc/_health\xa0"),
        ("POST", b"/xrpc/com.atproto.repo.uploadBlob\x0b"),
    ],
)
async def test_unroutable_targets_get_400_never_500(
    start_gate: GateFactory, upstream: Upstream, method: str, target: bytes
) -> None:
    rec, _ = upstream
    gate = await start_gate()
    answer = await exchange(*gate.public, method, target, {"Host": "h", "Content-Length": "0"})
    assert answer.status == 400
    assert rec.seen == []
    # and the gate keeps serving
    ok = await exchange(*gate.public, "GET", b"/xrpc/_health", {"Host": "h"})
    assert ok.status == 200
