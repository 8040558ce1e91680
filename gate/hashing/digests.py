"""Exact digests of a body: SHA-256, MD5, SHA-1 and the CID the PDS stores the blob under."""

from __future__ import annotations

import hashlib
from base64 import b32encode
from dataclasses import dataclass

# CIDv1 (0x01), multicodec raw (0x55), multihash sha2-256 (0x12) of 32 bytes (0x20): what the PDS
# computes for a blob, so the gate records the same key the PDS will store.
_CID_PREFIX = bytes((0x01, 0x55, 0x12, 0x20))

# The three hashes walk the body together in chunks that stay in the CPU cache, so a 100 MB body is
# read from memory once rather than three times. hashlib releases the GIL for each update.
_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class Digests:
    sha256: str
    md5: str
    sha1: str
    cid: str
    size: int


def cid_from_sha256(sha256: bytes) -> str:
    """``b`` (multibase base32 lower) + base32 of the CIDv1 raw sha2-256 bytes, unpadded."""
    return "b" + b32encode(_CID_PREFIX + sha256).decode("ascii").lower().rstrip("=")


def digests(body: bytes | bytearray | memoryview) -> Digests:
    view = memoryview(body)
    sha256 = hashlib.sha256()
    # MD5 and SHA-1 identify content in hash banks; they are not used for security here.
    md5 = hashlib.md5(usedforsecurity=False)
    sha1 = hashlib.sha1(usedforsecurity=False)
    for start in range(0, len(view), _CHUNK):
        chunk = view[start : start + _CHUNK]
        sha256.update(chunk)
        md5.update(chunk)
        sha1.update(chunk)
    raw = sha256.digest()
    return Digests(
        sha256=raw.hex(),
        md5=md5.hexdigest(),
        sha1=sha1.hexdigest(),
        cid=cid_from_sha256(raw),
        size=len(view),
    )
