"""The firehose watcher's pure parts: blob references found anywhere in a record, the cursor watermark,
the policy's [firehose] table, which PDS endpoints may be asked, and firehose URLs."""

from __future__ import annotations

import hashlib
from typing import Any

import libipld
import pytest
from yarl import URL

from gate.firehose.events import MAX_DEPTH, decode, walk_blobs
from gate.firehose.identity import Identities, public_host
from gate.firehose.progress import Progress
from gate.firehose.stream import xrpc_base
from gate.labels.key import LabelerKey
from gate.labels.service_auth import service_jwt
from gate.policy.firehose import parse_firehose
from gate.settings import Settings, SettingsError


def link(data: bytes) -> bytes:
    """A raw-codec CIDv1 link as libipld decodes one out of a record (its binary form)."""
    return bytes([1, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()


def blob(data: bytes, mime: str = "image/jpeg") -> dict[str, Any]:
    return {"$type": "blob", "ref": link(data), "mimeType": mime, "size": len(data)}


def test_blobs_anywhere_in_any_record() -> None:
    a, b, c, d = (blob(x) for x in (b"a", b"b", b"c", b"d"))
    post = {
        "$type": "app.bsky.feed.post",
        "embed": {
            "$type": "app.bsky.embed.recordWithMedia",
            "media": {"$type": "app.bsky.embed.images", "images": [{"image": a, "alt": ""}, {"image": b}]},
        },
    }
    profile = {"$type": "app.bsky.actor.profile", "avatar": c, "banner": d}
    unknown = {"$type": "com.example.gallery", "deep": [[{"x": {"y": blob(b"e", "video/mp4")}}]]}
    assert [x[0] for x in walk_blobs(post)] == [
        libipld.encode_cid(link(b"a")),
        libipld.encode_cid(link(b"b")),
    ]
    assert len(list(walk_blobs(profile))) == 2
    ((cid, mime, size),) = walk_blobs(unknown)
    assert (mime, size) == ("video/mp4", 1) and cid.startswith("bafkrei")


def test_what_is_not_a_blob_reference() -> None:
    assert list(walk_blobs({"$type": "blob"})) == []  # no ref
    assert list(walk_blobs({"$type": "app.bsky.embed.images", "ref": link(b"x")})) == []
    nested: dict[str, Any] = blob(b"deep")
    for _ in range(MAX_DEPTH + 5):
        nested = {"n": nested}
    assert list(walk_blobs(nested)) == []  # deeper than any real record: not followed


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "frame"),
        (b"\xff\xfe garbage", "frame"),
        ("a text frame", "frame"),
        (libipld.encode_dag_cbor({"op": 1, "t": "#commit"}) + libipld.encode_dag_cbor({"seq": 5}), "body"),
    ],
)
def test_frames_that_do_not_decode(raw: bytes | str, why: str) -> None:
    event = decode(raw)
    assert type(event).__name__ == "Malformed" and event.why == why  # type: ignore[union-attr]  # the class, by name, first


def test_other_and_error_frames() -> None:
    other = decode(libipld.encode_dag_cbor({"op": 1, "t": "#identity"}) + libipld.encode_dag_cbor({"seq": 9}))
    assert (type(other).__name__, other.seq) == ("OtherEvent", 9)  # type: ignore[union-attr]  # the class, by name, first
    error = decode(libipld.encode_dag_cbor({"op": -1}) + libipld.encode_dag_cbor({"error": "FutureCursor"}))
    assert (type(error).__name__, error.error) == ("StreamError", "FutureCursor")  # type: ignore[union-attr]  # the class, by name, first


def test_the_watermark_never_passes_an_event_in_flight() -> None:
    p = Progress(10)
    assert not p.begin(10) and not p.begin(3)  # delivered again after a reconnect
    for seq in (11, 14, 20):
        assert p.begin(seq)
    p.finish(14)
    p.finish(20)
    assert p.watermark == 10  # 11 is still being judged
    p.finish(11)
    assert p.watermark == 20 and p.in_flight == 0
    assert Progress(None).watermark is None


def test_the_policy_firehose_table() -> None:
    problems: list[str] = []
    table = {
        "max_lag_seconds": 30,
        "on_lag": "skip",
        "takedown": True,
        "labels": [
            {"rule": "banned", "values": ["hash-match", "hash-match"], "account": True, "report": True},
            {"rule": "held", "values": ["hash-review"]},
        ],
    }
    parsed = parse_firehose(table, lambda k, m: problems.append(f"{k}: {m}"), {"banned", "held", "other"})
    assert problems == []
    assert (parsed.max_lag_seconds, parsed.on_lag, parsed.takedown) == (30, "skip", True)
    rule = parsed.labels_for("banned")
    assert rule is not None and rule.values == ("hash-match",) and rule.account and rule.report
    held = parsed.labels_for("held")
    assert held is not None and not held.account and not held.report
    assert parsed.labels_for("other") is None


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ({"on_lag": "drop"}, "firehose.on_lag"),
        ({"max_lag_seconds": 0}, "firehose.max_lag_seconds"),
        ({"labels": [{"rule": "nope", "values": ["x"]}]}, "firehose.labels[0].rule"),
        ({"labels": [{"rule": "banned", "values": ["Has Spaces"]}]}, "firehose.labels[0].values"),
        ({"labels": [{"rule": "banned", "values": []}]}, "firehose.labels[0].values"),
        ({"labels": [{"rule": "banned", "values": ["a"], "acount": True}]}, "firehose.labels[0].acount"),
        ({"lag": 1}, "firehose.lag"),
        ({"labels": [{"rule": "banned", "values": ["a"], "report": "yes"}]}, "firehose.labels[0].report"),
        ({"takedown": "yes"}, "firehose.takedown"),
    ],
)
def test_bad_firehose_tables(table: dict[str, Any], where: str) -> None:
    problems: list[str] = []
    parse_firehose(table, lambda k, m: problems.append(k), {"banned"})
    assert where in problems


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://pds.example.com", True),
        ("https://morel.us-east.host.bsky.network", True),
        ("http://pds.example.com", False),  # plain http
        ("https://127.0.0.1", False),
        ("https://[::1]", False),
        ("https://10.0.0.8:2583", False),
        ("https://localhost", False),
        ("https://metadata.google.internal", False),
        ("https://printer.local", False),
        ("https://intranet", False),  # no dot: a name only a local resolver knows
        ("http://127.0.0.1:2583", True),  # the gate's own PDS, allowed by the operator
    ],
)
def test_which_pds_endpoints_may_be_asked(url: str, allowed: bool) -> None:
    ids = Identities(URL("https://plc.directory"), allowed=[URL("http://127.0.0.1:2583")])
    assert ids.allowed_endpoint(URL(url)) is allowed
    assert public_host(None) is False


def test_firehose_urls() -> None:
    assert xrpc_base("wss://bsky.network") == "wss://bsky.network/xrpc"
    assert xrpc_base("http://127.0.0.1:3000") == "ws://127.0.0.1:3000/xrpc"
    with pytest.raises(ValueError):
        xrpc_base("ftp://x")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATE_REPORT_SERVICE_URL": "https://mod.example"}, "go together"),
        ({"GATE_REPORT_SERVICE_DID": "did:web:mod.example"}, "go together"),
        (
            {
                "GATE_REPORT_SERVICE_URL": "https://mod.example",
                "GATE_REPORT_SERVICE_DID": "did:web:mod.example",
            },
            "needs GATE_LABELER_DID",
        ),
    ],
)
def test_report_settings_that_cannot_work(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"GATE_UPSTREAM": "http://127.0.0.1:2583", **env})


def test_a_service_token_the_sdk_verifies() -> None:
    """Signed as ``<labeler>#atproto_labeler`` for one method and one audience; the atproto SDK's
    verifier accepts it with the labeler's did:key, refuses it for another audience or key."""
    from atproto_server.auth.jwt import verify_jwt
    from atproto_server.exceptions import TokenInvalidAudienceError, TokenInvalidSignatureError

    key, other = LabelerKey.from_hex("5a" * 32), LabelerKey.from_hex("5b" * 32)
    token = service_jwt(key, "did:plc:lab", "did:web:mod.example", "com.atproto.moderation.createReport")
    payload = verify_jwt(token, lambda iss, fresh: key.did_key, own_did="did:web:mod.example")
    assert payload.iss == "did:plc:lab#atproto_labeler"
    with pytest.raises(TokenInvalidAudienceError):
        verify_jwt(token, lambda iss, fresh: key.did_key, own_did="did:web:other.example")
    with pytest.raises(TokenInvalidSignatureError):
        verify_jwt(token, lambda iss, fresh: other.did_key, own_did="did:web:mod.example")
