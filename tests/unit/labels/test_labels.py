"""The labeler's key, the label's signed bytes and queryLabels' patterns — checked against the atproto
SDK's own verifier and decoder, not against this code's."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import libipld
import pytest
from atproto_crypto.verify import verify_signature

from gate.errors import InvalidRequest
from gate.labels.key import HALF_ORDER, LabelerKey, LabelerKeyError
from gate.labels.label import Label, reads_as_link
from gate.labels.labeler import Labeler
from gate.labels.store import LabelStore
from gate.labels.xrpc import error_frame, labels_frame, parse_patterns
from gate.store.pool import Pool

SRC = "did:plc:labeler000000000000000"
URI = "at://did:plc:author/app.bsky.feed.post/3k"


def test_signatures_are_low_s_and_verify_with_the_sdk() -> None:
    key = LabelerKey.generate()
    assert key.did_key.startswith("did:key:zQ3s")  # secp256k1, compressed, base58btc
    for i in range(64):  # about half of raw ECDSA signatures are high-S: every one here must be low
        data = f"label {i}".encode()
        sig = key.sign(data)
        assert len(sig) == 64
        assert int.from_bytes(sig[32:], "big") <= HALF_ORDER
        assert verify_signature(key.did_key, data, sig)
        assert not verify_signature(key.did_key, data + b"!", sig)


def test_the_key_file_is_private_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "labeler.json"
    key = LabelerKey.generate().save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = LabelerKey.load(path)
    assert again.did_key == key.did_key == json.loads(path.read_text())["did_key"]
    with pytest.raises(LabelerKeyError, match="already exists"):
        LabelerKey.generate().save(path)
    os.chmod(path, 0o644)
    with pytest.raises(LabelerKeyError, match="chmod 600"):
        LabelerKey.load(path)


def test_a_hex_key_from_the_environment() -> None:
    key = LabelerKey.generate()
    text = f"{key.private.private_numbers().private_value:064x}"
    assert LabelerKey.from_hex(text).did_key == key.did_key
    for bad in ("", "zz" * 32, "00" * 32, "ab" * 31):
        with pytest.raises(LabelerKeyError):
            LabelerKey.from_hex(bad)
    with pytest.raises(LabelerKeyError, match="not both"):
        LabelerKey.configured(Path("/x"), text)


def test_the_signed_bytes_are_the_label_without_sig() -> None:
    plain = Label(SRC, URI, "hash-match", "2026-12-05T01:02:03.456Z")
    assert libipld.decode_dag_cbor(plain.signing_bytes()) == {
        "ver": 1, "src": SRC, "uri": URI, "val": "hash-match", "cts": "2026-12-05T01:02:03.456Z"
    }  # fmt: skip
    neg = Label(SRC, URI, "hash-match", "2026-12-05T01:02:03.456Z", cid="bafyrei", neg=True)
    assert libipld.decode_dag_cbor(neg.signing_bytes())["neg"] is True
    signed = neg.signed(b"\x01" * 64)
    assert signed.signing_bytes() == neg.signing_bytes()  # the signature is not part of what it signs
    text = signed.to_json()["sig"]["$bytes"]
    assert "=" not in text and base64.b64decode(text + "==") == b"\x01" * 64  # unpadded, as atproto writes
    assert signed.to_cbor_obj()["sig"] == b"\x01" * 64


def test_frames_are_two_dag_cbor_objects() -> None:
    label = Label(SRC, URI, "v", "2026-12-05T01:02:03.456Z", sig=b"\x02" * 64)
    header, body = libipld.decode_dag_cbor_multi(labels_frame(7, [label]))
    assert header == {"op": 1, "t": "#labels"}
    assert body["seq"] == 7 and body["labels"][0]["sig"] == b"\x02" * 64
    assert libipld.decode_dag_cbor_multi(error_frame("FutureCursor", "Cursor in the future.")) == [
        {"op": -1},
        {"error": "FutureCursor", "message": "Cursor in the future."},
    ]


@pytest.mark.parametrize(
    ("patterns", "exact", "prefixes"),
    [
        ([URI], (URI,), ()),
        (["*"], (), ("",)),
        (["at://did:plc:author/*", URI], (URI,), ("at://did:plc:author/",)),
    ],
)
def test_uri_patterns(patterns: list[str], exact: tuple[str, ...], prefixes: tuple[str, ...]) -> None:
    parsed = parse_patterns(patterns)
    assert (parsed.exact, parsed.prefixes) == (exact, prefixes)


@pytest.mark.parametrize("patterns", [[], ["at://*/app.bsky.feed.post/x"], ["**"], ["x" * 3000], ["a"] * 101])
def test_bad_uri_patterns(patterns: list[str]) -> None:
    with pytest.raises(InvalidRequest):
        parse_patterns(patterns)


def test_signatures_libipld_would_encode_as_links_are_made_again() -> None:
    """libipld encodes bytes that begin like a CID as a link: such a signature is never handed out."""
    link_like = bytes([1, 0x71, 0x12, 0x20]) + b"\x07" * 60
    assert reads_as_link(link_like) and not reads_as_link(b"\x02" * 64)

    real = LabelerKey.generate()

    @dataclass(frozen=True)
    class FirstSignatureReadsAsALink(LabelerKey):
        made: list[bytes] = field(default_factory=list)

        def sign(self, data: bytes) -> bytes:
            self.made.append(link_like if not self.made else real.sign(data))
            return self.made[-1]

    key = FirstSignatureReadsAsALink(real.private)
    labeler = Labeler(SRC, key, LabelStore(Pool("postgresql://unused")))
    label = Label(SRC, URI, "v", "2026-12-05T01:02:03.456Z")
    sig = labeler.sign(label)
    assert (
        len(key.made) == 2
        and sig == key.made[1]
        and verify_signature(real.did_key, label.signing_bytes(), sig)
    )
    _, body = libipld.decode_dag_cbor_multi(labels_frame(1, [label.signed(sig)]))
    assert body["labels"][0]["sig"] == sig  # bytes on the wire, not a link
