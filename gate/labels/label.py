"""``Label``: one ``com.atproto.label.defs#label`` — its fields, the bytes its signature covers, and its
two wire forms (JSON for queryLabels, DAG-CBOR for subscribeLabels).

What is signed (atproto.com/specs/label): the DAG-CBOR encoding (libipld, the atproto SDK's IPLD library)
of the label with ``ver: 1`` and without ``sig``; absent optional fields are left out, never null, and
``neg`` appears only when true — what @atproto/ozone signs, so any atproto verifier re-encodes the same
bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import libipld

VERSION = 1
VAL_MAX = 128  # the lexicon's maxLength of val


def reads_as_link(raw: bytes) -> bool:
    """Whether libipld would encode ``raw`` as a CID link (tag 42) rather than as bytes. Its encoder
    takes any bytes that begin like a CID for one — about one random 64-byte signature in 1100 — and a
    subscriber would then decode a link where ``sig`` should be, and the label would not verify."""
    return bytes(libipld.encode_dag_cbor(raw)[:2]) == b"\xd8\x2a"


def now_cts() -> str:
    """A label timestamp as atproto writes them: UTC, milliseconds, ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Label:
    src: str  # the labeler's DID
    uri: str  # at:// URI of a record, or an account's DID
    val: str
    cts: str  # as signed: never re-formatted after the label is made
    cid: str | None = None
    neg: bool = False
    exp: str | None = None
    sig: bytes | None = None
    ver: int = VERSION

    def unsigned(self) -> dict[str, Any]:
        """The label as signed: every present field, no ``sig``."""
        out: dict[str, Any] = {
            "ver": self.ver,
            "src": self.src,
            "uri": self.uri,
            "val": self.val,
            "cts": self.cts,
        }
        if self.cid is not None:
            out["cid"] = self.cid
        if self.neg:
            out["neg"] = True
        if self.exp is not None:
            out["exp"] = self.exp
        return out

    def signing_bytes(self) -> bytes:
        encoded: bytes = libipld.encode_dag_cbor(self.unsigned())
        return encoded

    def signed(self, sig: bytes) -> Label:
        return replace(self, sig=sig)

    def to_cbor_obj(self) -> dict[str, Any]:
        """For a DAG-CBOR frame: ``sig`` as CBOR bytes."""
        out = self.unsigned()
        if self.sig is not None:
            out["sig"] = self.sig
        return out

    def to_json(self) -> dict[str, Any]:
        """For XRPC JSON: ``sig`` in the atproto data model's bytes form (unpadded base64)."""
        out = self.unsigned()
        if self.sig is not None:
            out["sig"] = {"$bytes": base64.b64encode(self.sig).decode("ascii").rstrip("=")}
        return out
