"""Exact digests and the CID against values computed independently of the gate's code."""

from __future__ import annotations

import hashlib

import pytest

from gate.hashing.digests import cid_from_sha256, digests

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# The well-known CIDv1 of the empty raw block (ipfs / atproto tooling agree on it).
EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def _base32_lower(data: bytes) -> str:
    """RFC 4648 base32, lowercase, unpadded, written out bit by bit (independent of base64.b32encode)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    bitstring = "".join(f"{byte:08b}" for byte in data)
    bitstring += "0" * (-len(bitstring) % 5)
    return "".join(alphabet[int(bitstring[i : i + 5], 2)] for i in range(0, len(bitstring), 5))


def test_empty_body() -> None:
    found = digests(b"")
    assert found.sha256 == EMPTY_SHA256
    assert found.md5 == "d41d8cd98f00b204e9800998ecf8427e"
    assert found.sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    assert found.cid == EMPTY_CID
    assert found.size == 0


@pytest.mark.parametrize(
    "body",
    [b"hello", b"\x00" * 1000, bytes(range(256)) * 4099],  # the last spans several 256 KiB chunks
    ids=["hello", "zeros", "multi-chunk"],
)
def test_digests_match_hashlib_and_an_independent_cid(body: bytes) -> None:
    found = digests(body)
    sha256 = hashlib.sha256(body).digest()
    assert found.sha256 == sha256.hex()
    assert found.md5 == hashlib.md5(body).hexdigest()
    assert found.sha1 == hashlib.sha1(body).hexdigest()
    assert found.size == len(body)
    # CIDv1 = version 1, codec raw 0x55, multihash sha2-256 (0x12) length 32 (0x20), multibase "b".
    assert found.cid == "b" + _base32_lower(b"\x01\x55\x12\x20" + sha256)


def test_cid_of_hello_is_the_known_value() -> None:
    assert digests(b"hello").cid == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    assert cid_from_sha256(bytes.fromhex(EMPTY_SHA256)) == EMPTY_CID


def test_memoryview_body_gives_the_same_digests() -> None:
    body = bytes(range(256)) * 3000
    assert digests(memoryview(body)) == digests(body)
