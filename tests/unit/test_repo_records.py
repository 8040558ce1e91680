"""``blob_records``: a repo's CAR, built here block by block as the PDS writes one, walked to the
records that reference each blob — keys rebuilt from their shared prefixes, every subtree visited, both
blob forms, and nothing a hostile CAR draws (a subtree linked twice, a missing block) makes it fail or
repeat."""

from __future__ import annotations

import hashlib

import libipld
import pytest

from gate.repo_records import blob_records

DID = "did:plc:recordsrecordsrecordsrec"


def cid(data: bytes, codec: int = 0x71) -> bytes:
    """A CIDv1 sha2-256 in binary, as DAG-CBOR links carry it (0x71 dag-cbor, 0x55 raw)."""
    return bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(data).digest()


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class Car:
    def __init__(self) -> None:
        self.blocks: list[tuple[bytes, bytes]] = []

    def add(self, value: object) -> bytes:
        data = libipld.encode_dag_cbor(value)
        self.blocks.append((cid(data), data))
        return cid(data)

    def bytes(self, root: bytes) -> bytes:
        header = libipld.encode_dag_cbor({"roots": [root], "version": 1})
        out = varint(len(header)) + header
        for c, data in self.blocks:
            out += varint(len(c) + len(data)) + c + data
        return out


def blob(data: bytes) -> dict[str, object]:
    return {"$type": "blob", "ref": cid(data, 0x55), "mimeType": "image/png", "size": len(data)}


def text_cid(data: bytes) -> str:
    return libipld.encode_cid(cid(data, 0x55))


def test_every_record_that_references_a_blob_is_named() -> None:
    car = Car()
    post = car.add(
        {
            "$type": "app.bsky.feed.post",
            "text": "two pictures",
            "embed": {
                "$type": "app.bsky.embed.images",
                "images": [{"image": blob(b"one")}, {"image": blob(b"two")}],
            },
        }
    )
    profile = car.add({"$type": "app.bsky.actor.profile", "avatar": blob(b"one")})
    legacy = car.add(
        {"$type": "app.bsky.feed.post", "image": {"cid": text_cid(b"old"), "mimeType": "image/jpeg"}}
    )
    plain = car.add({"$type": "app.bsky.feed.like", "subject": {"uri": "at://x", "cid": "not a blob"}})
    # Two levels: the left subtree holds the profile; the root's keys share their collection prefix.
    left = car.add({"l": None, "e": [{"p": 0, "k": b"app.bsky.actor.profile/self", "v": profile, "t": None}]})
    right = car.add({"l": None, "e": [{"p": 0, "k": b"app.bsky.feed.post/3old", "v": legacy, "t": None}]})
    root = car.add(
        {
            "l": left,
            "e": [
                {"p": 0, "k": b"app.bsky.feed.like/3aaa", "v": plain, "t": None},
                {"p": 14, "k": b"post/3new", "v": post, "t": right},
            ],
        }
    )
    commit = car.add({"did": DID, "version": 3, "data": root, "rev": "3abc", "prev": None, "sig": b"x"})

    assert blob_records(DID, car.bytes(commit)) == {
        text_cid(b"one"): [f"at://{DID}/app.bsky.actor.profile/self", f"at://{DID}/app.bsky.feed.post/3new"],
        text_cid(b"two"): [f"at://{DID}/app.bsky.feed.post/3new"],
        text_cid(b"old"): [f"at://{DID}/app.bsky.feed.post/3old"],
    }


def test_subtrees_linked_twice_are_walked_once_and_a_missing_block_is_skipped() -> None:
    """A CAR may link one block from many nodes: 60 levels each linking the next twice would be 2**60
    visits for a walk that followed every link."""
    car = Car()
    record = car.add({"$type": "app.bsky.feed.post", "embed": {"image": blob(b"pic")}})
    node = car.add(
        {"l": cid(b"not in the CAR"), "e": [{"p": 0, "k": b"app.bsky.feed.post/3a", "v": record, "t": None}]}
    )
    for level in range(60):
        key = f"app.bsky.feed.post/3b{level:02d}".encode()
        node = car.add({"l": node, "e": [{"p": 0, "k": key, "v": record, "t": node}]})
    commit = car.add({"did": DID, "data": node})
    [(pic, uris)] = blob_records(DID, car.bytes(commit)).items()
    assert pic == text_cid(b"pic")
    assert uris[0] == f"at://{DID}/app.bsky.feed.post/3a" and len(uris) == 61


@pytest.mark.parametrize("raw", [b"", b"not a CAR", None])
def test_what_is_not_a_repo_says_so(raw: bytes | None) -> None:
    if raw is None:  # a CAR whose root is no commit
        car = Car()
        raw = car.bytes(car.add({"something": "else"}))
    with pytest.raises(ValueError):
        blob_records(DID, raw)
