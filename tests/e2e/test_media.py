"""Every picture a viewer could see is judged (issue 12), against the real PDS.

Each banned variant hides the banned picture from a gate that reads only what the magic bytes say: a
JPEG that sniffs as video, the picture as a later animation frame, an APNG's default image outside the
animation, the picture stored turned with an EXIF orientation that turns it back. Each is refused and
the PDS's blob store on disk is unchanged; the same construction around a clean picture is forwarded and
the PDS stores it (a blob file with its bytes), and the gate's decision says what it saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from PIL import Image

from tests.e2e.endpoints import Endpoint, User, new_user
from tests.e2e.gate_server import REJECT_ERROR, Gate
from tests.e2e.images import picture, sha256
from tests.e2e.pds_server import Pds
from tests.support.cids import cid_of
from tests.support.media import BOXES, TEN_MS_FIRST, oriented, polyglot, save

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"),
]

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
BANNED = 2  # the seed of the e2e session's banned picture (conftest.py: pictures.banned)


@pytest.fixture(scope="module")
def user(gate: Gate) -> Iterator[User]:
    made = new_user(Endpoint("gate", gate.url, True))
    yield made
    made.client.request.close()


def upload(gate: Gate, user: User, body: bytes, content_type: str) -> httpx.Response:
    return httpx.post(
        gate.url + UPLOAD,
        content=body,
        headers={"Authorization": f"Bearer {user.access_jwt}", "Content-Type": content_type},
        timeout=60,
    )


def refused(gate: Gate, pds: Pds, user: User, body: bytes, content_type: str) -> dict[str, object]:
    """Upload ``body``: it must be refused with the policy's reject and never reach the PDS's store.
    Returns the gate's decision row."""
    before = pds.blob_files()
    answer = upload(gate, user, body, content_type)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == REJECT_ERROR
    assert pds.stored_since(before) == {}  # (the gate's empty-body probe leaves only a 0-byte blob)
    assert sha256(body) not in pds.blob_files().values()
    (row,) = gate.decisions(cid_of(body))
    assert (row["verdict"], row["rule"]) == ("reject", "banned-pdq")
    return row


def stored(gate: Gate, pds: Pds, user: User, body: bytes, content_type: str) -> dict[str, object]:
    """Upload ``body``: it must be forwarded and the PDS must keep exactly these bytes. Returns the
    PDS's blob reference."""
    answer = upload(gate, user, body, content_type)
    assert answer.status_code == 200, answer.text
    blob: dict[str, object] = answer.json()["blob"]
    assert blob["ref"] == {"$link": cid_of(body)}
    assert sha256(body) in pds.blob_files().values()
    assert [row["verdict"] for row in gate.decisions(cid_of(body))] == ["forward"]
    return blob


def only_match(row: dict[str, object]) -> dict[str, object]:
    matches = row["matches"]
    assert isinstance(matches, list) and len(matches) == 1, matches
    match: dict[str, object] = matches[0]
    return match


def jpeg(seed: int, **params: object) -> bytes:
    return save(picture(seed), "JPEG", quality=90, **params)


@pytest.mark.parametrize("box", BOXES, ids=[b.decode() for b in BOXES])
def test_a_jpeg_that_sniffs_as_video_is_judged_as_the_jpeg(
    gate: Gate, pds: Pds, user: User, box: bytes
) -> None:
    row = refused(gate, pds, user, polyglot(jpeg(BANNED), box), "image/jpeg")
    types = row["media_types"]
    assert isinstance(types, list) and types[0] == "image/jpeg" and types[1].startswith("video/")

    clean = polyglot(jpeg(30 + BOXES.index(box)), box)
    blob = stored(gate, pds, user, clean, "image/jpeg")
    assert blob["mimeType"] == "image/jpeg"  # what the PDS (and so every app) takes these bytes for


def _animated(fmt: str, first: Image.Image, second: Image.Image) -> bytes:
    extra = {"lossless": True} if fmt == "WEBP" else {}
    return save(first, fmt, second, **TEN_MS_FIRST, **extra)


ANIMATIONS = [("GIF", "image/gif"), ("PNG", "image/png"), ("WEBP", "image/webp")]


@pytest.mark.parametrize(("fmt", "content_type"), ANIMATIONS, ids=["gif", "apng", "webp"])
def test_the_banned_picture_as_the_second_frame_is_refused(
    gate: Gate, pds: Pds, user: User, fmt: str, content_type: str
) -> None:
    row = refused(gate, pds, user, _animated(fmt, picture(40), picture(BANNED)), content_type)
    match = only_match(row)
    assert match["frame"] == 1
    assert row["frames"] == 2

    stored(gate, pds, user, _animated(fmt, picture(41 + len(fmt)), picture(44 + len(fmt))), content_type)


def test_an_apng_default_image_outside_the_animation_is_judged(gate: Gate, pds: Pds, user: User) -> None:
    # Viewers without APNG support show the default image; APNG players skip it.
    hidden = save(picture(BANNED), "PNG", picture(50), picture(51), default_image=True, duration=100)
    row = refused(gate, pds, user, hidden, "image/png")
    match = only_match(row)
    assert match["frame"] == 0

    clean = save(picture(52), "PNG", picture(50), picture(51), default_image=True, duration=100)
    stored(gate, pds, user, clean, "image/png")


@pytest.mark.parametrize("tag", range(2, 9))
def test_the_banned_picture_stored_turned_with_an_exif_orientation_is_refused(
    gate: Gate, pds: Pds, user: User, tag: int
) -> None:
    row = refused(gate, pds, user, oriented(picture(BANNED), tag, quality=90), "image/jpeg")
    match = only_match(row)
    assert match["variant"] == "displayed"

    stored(gate, pds, user, oriented(picture(60 + tag), tag, quality=90), "image/jpeg")


def test_a_clean_post_embeds_a_jpeg_that_sniffs_as_video(
    gate: Gate, pds: Pds, make_user: Callable[[Endpoint], User]
) -> None:
    """The whole app path (upload, then a post embedding the blob) through the gate: the PDS accepts the
    embed as an image, so the gate must judge these bytes as one."""
    poster = make_user(Endpoint("gate", gate.url, True))
    body = polyglot(jpeg(70), b"moov")
    posted = poster.post_image(body)
    assert posted.uri.startswith(f"at://{poster.did}/app.bsky.feed.post/")
    assert sha256(body) in pds.blob_files().values()
