"""A Bluesky user's uploads, through the gate alone and through real nginx and Caddy in front of it.

Every case runs once per front (``front`` fixture): the gate itself, and nginx and Caddy running the
shipped files — the defaults, which send only uploads and blob reads through the gate, and the
whole-site variants. The client is the real ``atproto`` SDK; the PDS is the real ``@atproto/pds``.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable

import httpx
import pytest
from atproto import firehose_models, models, parse_subscribe_repos_message
from atproto_client.exceptions import BadRequestError
from websockets.sync.client import connect

from tests.e2e import images
from tests.e2e.endpoints import FRONTS, Endpoint, Images, User
from tests.e2e.gate_server import REJECT_ERROR, Gate
from tests.e2e.images import png, sha256
from tests.e2e.pds_server import Pds
from tests.e2e.spellings import GATE_JUDGED, GATE_MATCHED_PDS_REFUSES, GET_BLOB_SPELLINGS, UPLOAD_SPELLINGS
from tests.e2e.wire import send
from tests.support.cids import cid_of

pytestmark = [
    pytest.mark.e2e,
    # The atproto SDK uploads with httpx's deprecated ``data=<bytes>``; its warning is not ours.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"),
]

POST = "app.bsky.feed.post"
WITHHELD = {"error": "InvalidRequest", "message": "Blob not found"}


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
    assert pds.stored_since(before) == {}, "the PDS wrote a file for a refused upload"
    assert sha256(image) not in pds.blob_files().values()
    assert "reject" in verdicts(gate, cid_of(image))


def test_no_spelling_of_the_upload_route_gets_past_the_gate(
    front: Endpoint, gate: Gate, pds: Pds, pictures: Images, make_user: Callable[[Endpoint], User]
) -> None:
    """Spellings the PDS accepts, and ones a front could normalise into them, sent byte for byte: the
    banned picture is never stored, and every spelling the gate matches is judged and recorded."""
    user = make_user(front)
    headers = {"Authorization": f"Bearer {user.access_jwt}", "Content-Type": "image/jpeg"}
    banned = images.near_duplicate(2, quality=85 + FRONTS.index(front.name))  # its own CID per front
    before = pds.blob_files()
    refused = 0
    for target in UPLOAD_SPELLINGS:
        answer = send(front, "POST", target, headers, banned)
        assert answer.status >= 400, (target, answer)
        if target in GATE_JUDGED:
            assert (answer.status, answer.error()) == (400, REJECT_ERROR), (target, answer)
        if target in GATE_MATCHED_PDS_REFUSES:  # the PDS's own refusal of the path, no verdict
            assert 400 <= answer.status < 500 and answer.error() != REJECT_ERROR, (target, answer)
        refused += answer.error() == REJECT_ERROR
    assert pds.stored_since(before) == {}, "the PDS stored the banned picture"
    assert refused >= len(GATE_JUDGED)
    # One reject row per refusal the policy gave (the decision log is written just after the answer).
    deadline = time.monotonic() + 10
    while len(rows := verdicts(gate, cid_of(banned))) < refused and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rows == ["reject"] * refused


def test_a_blob_the_gate_blocked_is_not_served(
    front: Endpoint, gate: Gate, pds: Pds, make_user: Callable[[Endpoint], User]
) -> None:
    """A copy of banked content that reached the PDS another way (an older upload, straight to the PDS)
    is withheld from getBlob once the gate has blocked it: through every front, in every spelling."""
    owner = make_user(Endpoint("pds", pds.url, True))
    copy = images.near_duplicate(2, quality=70 + FRONTS.index(front.name))  # its own bytes per front
    post = owner.post_image(copy)  # stored for good on the PDS, the gate never saw it
    cid = (
        owner.client.com.atproto.repo.get_record(
            {"repo": owner.did, "collection": POST, "rkey": post.uri.rsplit("/", 1)[1]}
        )
        .value.embed.images[0]
        .image.cid.encode()
    )
    assert cid == cid_of(copy)
    direct = httpx.get(f"{pds.url}/xrpc/com.atproto.sync.getBlob", params={"did": owner.did, "cid": cid})
    assert direct.content == copy  # the PDS itself would serve it
    # The same bytes uploaded through the front: refused, and from then on withheld.
    refused = send(
        front,
        "POST",
        "/xrpc/com.atproto.repo.uploadBlob",
        {"Authorization": f"Bearer {owner.access_jwt}", "Content-Type": "image/jpeg"},
        copy,
    )
    assert refused.error() == REJECT_ERROR, refused
    for spelling in GET_BLOB_SPELLINGS:
        target = spelling.format(did=owner.did, cid=cid)
        answer = send(front, "GET", target, {})
        assert answer.status >= 400 and copy not in answer.body, target
        if "\\" not in spelling:  # the gate's own answer: the PDS's for a blob it does not have
            assert (answer.status, json.loads(answer.body)) == (400, WITHHELD), target


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
