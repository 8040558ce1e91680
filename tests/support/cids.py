"""Blob CIDs as tests spell them, written out by hand so the gate's own CID code is checked against an
independent spelling."""

from __future__ import annotations

import base64
import hashlib


def cid_of(data: bytes) -> str:
    """CIDv1, raw codec, sha2-256, base32 — what the PDS names a blob."""
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def base58btc(raw: bytes) -> str:
    """``raw`` in base58btc (a leading zero byte is a leading "1"): another spelling of a CID."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    num, out = int.from_bytes(raw, "big"), ""
    while num:
        num, rem = divmod(num, 58)
        out = alphabet[rem] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out
