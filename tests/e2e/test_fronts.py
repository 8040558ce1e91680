"""A Bluesky user's uploads, through the gate alone and through real nginx and Caddy in front of it.

Every case runs once per front (``front`` fixture): the gate itself, nginx with the whole site through
the gate, nginx sending only the upload route to the gate, and the installer's Caddyfile with the gate
inserted. The client is the real ``atproto`` SDK; the PDS is the real ``@atproto/pds``.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

import httpx
import pytest
from atproto import firehose_models, models, parse_subscribe_repos_message
from atproto_client.exceptions import BadRequestError
from websockets.sync.client import connect

from tests.e2e.endpoints import FRONTS, Endpoint, Images, User
from tests.e2e.gate_server import REJECT_ERROR, Gate
from tests.e2e.images import cid_of, png, sha256
from tests.e2e.pds_server import Pds

pytestmark = [
    pytest.mark.e2e,
    # The atproto SDK uploads with httpx's deprecated ``data=<bytes>``; its warning is not ours.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"),
]

POST = "app.bsky.feed.post"


def clean_image(pictures: Images, front: Endpoint, offset: int = 0) -> bytes:
    """Distinct clean bytes per front and test, so each decision row belongs to exactly one case."""
    return pictures.clean[(FRONTS.index(front.name) + offset * len(FRONTS)) % len(pictures.clean)]


def verdicts(gate: Gate, cid: str) -> list[object]:
    return [row["verdict"] for row in gate.decisions(cid)]


def test_account_and_clean_post_round_trip(
    front: Endpoint, gate: Gate, pictures: Images, make_user: Callable[[Endpoint], User]
) -> None:
    user = make_user(front)
    image = pictures.clean[FRONTS.index(front.name)]

    post = user.post_image(image)

    rkey = post.uri.rsplit("/", 1)[1]
    record = user.client.com.atproto.repo.get_record({"repo": user.did, "collection": POST, "rkey": rkey})
    assert record.cid == post.cid
    embed = record.value.embed
    assert isinstance(embed, models.AppBskyEmbedImages.Main)
    cid = embed.images[0].image.cid.encode()
    assert cid == cid_of(image)  # the PDS stored exactly the bytes the client sent
    blob = user.client.com.atproto.sync.get_blob({"did": user.did, "cid": cid})
    assert blob == image
    # The gate judged this upload and recorded the same CID the PDS serves it under.
    assert verdicts(gate, cid) == ["forward"]


@pytest.mark.parametrize("kind", ["exact", "near-duplicate"])
def test_banked_image_is_refused_and_never_stored(
    front: Endpoint,
    gate: Gate,
    pds: Pds,
    pictures: Images,
    make_user: Callable[[Endpoint], User],
    kind: str,
) -> None:
    user = make_user(front)
    image = pictures.banned if kind == "exact" else pictures.banned_near
    assert (kind == "exact") == (sha256(image) == sha256(pictures.banned))
    before = pds.blob_files()

    with pytest.raises(BadRequestError) as refused:
        user.post_image(image)

    assert refused.value.response is not None
    assert refused.value.response.status_code == 400
    assert refused.value.response.content.error == REJECT_ERROR
    after = pds.blob_files()
    assert after == before, "the PDS wrote a file for a refused upload"
    assert sha256(image) not in after.values()
    assert "reject" in verdicts(gate, cid_of(image))


@pytest.mark.parametrize(
    "path",
    [
        "/XRPC/com.atproto.repo.uploadBlob",
        "/xrpc/com.atproto.repo.uploadblob",
        "/xrpc/COM.ATPROTO.REPO.UPLOADBLOB",
        "/xrpc/com.atproto.repo.uploadBlob/",
        "/xrpc/com.atproto.repo.uploadBlob?x=1",
    ],
)
def test_upload_path_variants_are_caught(
    front: Endpoint,
    gate: Gate,
    pds: Pds,
    pictures: Images,
    make_user: Callable[[Endpoint], User],
    path: str,
) -> None:
    """Spellings the PDS accepts as uploadBlob: through every front they still reach the gate."""
    user = make_user(front)
    before = pds.blob_files()
    answer = httpx.post(
        front.url + path,
        content=pictures.banned,
        headers={"Authorization": f"Bearer {user.access_jwt}", "Content-Type": "image/png"},
        verify=front.verify,
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == REJECT_ERROR
    assert pds.blob_files() == before


# Not through the gate alone: the suite's client is on loopback, which the gate trusts as a proxy.
@pytest.mark.parametrize("front", [f for f in FRONTS if f != "gate"], indirect=True)
def test_front_overwrites_a_spoofed_x_forwarded_for(
    front: Endpoint, gate: Gate, make_user: Callable[[Endpoint], User]
) -> None:
    """The PDS rate-limits on X-Forwarded-For: a client must not choose the address the gate records."""
    user = make_user(front)
    image = png(40 + FRONTS.index(front.name))
    answer = httpx.post(
        front.url + "/xrpc/com.atproto.repo.uploadBlob",
        content=image,
        headers={
            "Authorization": f"Bearer {user.access_jwt}",
            "Content-Type": "image/png",
            "X-Forwarded-For": "203.0.113.7",
        },
        verify=front.verify,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    (row,) = gate.decisions(cid_of(image))
    assert row["client_ip"] == "127.0.0.1"  # the address the front saw, not the client's claim


def test_firehose_carries_the_clean_post(
    front: Endpoint, pictures: Images, make_user: Callable[[Endpoint], User]
) -> None:
    user = make_user(front)
    url = front.url.replace("http", "ws", 1) + "/xrpc/com.atproto.sync.subscribeRepos"
    context = front.verify if isinstance(front.verify, ssl.SSLContext) else None
    with connect(url, ssl=context, open_timeout=15, max_size=None) as socket:
        post = user.post_image(clean_image(pictures, front, offset=1), text="live")
        wanted = f"{POST}/{post.uri.rsplit('/', 1)[1]}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            frame = firehose_models.Frame.from_bytes(socket.recv(timeout=deadline - time.monotonic()))
            message = parse_subscribe_repos_message(frame)
            if (
                not isinstance(message, models.ComAtprotoSyncSubscribeRepos.Commit)
                or message.repo != user.did
            ):
                continue
            ops = {(op.action, op.path, op.cid.encode() if op.cid else None) for op in message.ops}
            if ("create", wanted, post.cid) in ops:
                return
        pytest.fail(f"no commit for {wanted} on the firehose through {front.name}")
