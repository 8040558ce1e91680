"""Tables for the pure parts of the proxy: routing, forwarded headers, claimed identity, decoders, settings."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from pathlib import Path

import brotli
import pytest

from gate.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gate.proxy.body import decode, parse_encodings
from gate.proxy.budget import MemoryBudget, Reservation
from gate.proxy.forwarded import TrustedProxies, resolve
from gate.proxy.routing import is_upload
from gate.settings import Settings, SettingsError, parse_networks


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/xrpc/com.atproto.repo.uploadBlob", True),
        ("post", "/xrpc/com.atproto.repo.uploadblob", True),
        ("POST", "/XRPC/COM.ATPROTO.REPO.UPLOADBLOB/", True),
        ("POST", "/xrpc/com.atproto.repo.uploadBlob?foo=bar", True),
        ("POST", "/xrpc/com.atproto.repo.uploadBlob/?", True),
        ("POST", "/xrpc/com.atproto.repo.uploadBl%6Fb", True),
        ("POST", "/xrpc//com.atproto.repo.uploadBlob", True),
        ("GET", "/xrpc/com.atproto.repo.uploadBlob", False),
        ("POST", "/xrpc/com.atproto.repo.uploadBlobs", False),
        ("POST", "/xrpc/com.atproto.repo.createRecord", False),
    ],
)
def test_upload_routing(method: str, path: str, expected: bool) -> None:
    assert is_upload(method, path) is expected


TRUSTED = parse_networks("127.0.0.1/32,10.0.0.0/8")


@pytest.mark.parametrize(
    ("peer", "xff", "client", "chain"),
    [
        ("203.0.113.9", "1.2.3.4", "203.0.113.9", "203.0.113.9"),  # untrusted peer: overwrite
        ("127.0.0.1", None, "127.0.0.1", "127.0.0.1"),
        ("127.0.0.1", "198.51.100.1", "198.51.100.1", "198.51.100.1, 127.0.0.1"),
        (
            "127.0.0.1",
            "6.6.6.6, 198.51.100.1, 10.1.1.1",
            "198.51.100.1",
            "6.6.6.6, 198.51.100.1, 10.1.1.1, 127.0.0.1",
        ),
    ],
)
def test_forwarded_resolution(peer: str, xff: str | None, client: str, chain: str) -> None:
    fwd = resolve(peer, xff, "https", "http", TrustedProxies(TRUSTED))
    assert (fwd.client_ip, fwd.x_forwarded_for) == (client, chain)
    assert fwd.x_forwarded_proto == ("http" if peer == "203.0.113.9" else "https")


def test_encodings_parse_and_refuse_unknown() -> None:
    assert parse_encodings(["GZIP, identity", "Br"]) == ["gzip", "br"]
    with pytest.raises(UnsupportedMediaType):
        parse_encodings(["gzip, compress"])


@pytest.mark.parametrize(
    ("encodings", "encode"),
    [
        (["gzip"], gzip.compress),
        (["deflate"], zlib.compress),
        (["deflate"], lambda b: zlib.compress(b, wbits=-15)),  # raw deflate, as some clients send
        (["br"], brotli.compress),
        (["gzip", "br"], lambda b: brotli.compress(gzip.compress(b))),
    ],
)
def test_decode_round_trips(encodings: list[str], encode: Callable[[bytes], bytes]) -> None:
    body = b"picture bytes " * 1000
    res = Reservation(MemoryBudget(10**9))
    assert decode(encode(body), encodings, 10**6, res) == body


def test_decode_multi_member_gzip() -> None:
    res = Reservation(MemoryBudget(10**9))
    assert decode(gzip.compress(b"a") + gzip.compress(b"b"), ["gzip"], 100, res) == b"ab"


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate"])
def test_decode_caps_output(coding: str) -> None:
    comp = {"gzip": gzip.compress, "br": brotli.compress, "deflate": zlib.compress}[coding]
    res = Reservation(MemoryBudget(10**9))
    with pytest.raises(PayloadTooLarge):
        decode(comp(b"\0" * 5_000_000), [coding], 1_000_000, res)
    assert decode(comp(b"\0" * 1_000_000), [coding], 1_000_000, res) == b"\0" * 1_000_000


@pytest.mark.parametrize("data", [b"\x1f\x8b\x08\x00garbage", gzip.compress(b"x" * 1000)[:-30]])
def test_decode_malformed_is_400(data: bytes) -> None:
    with pytest.raises(InvalidRequest):
        decode(data, ["gzip"], 10**6, Reservation(MemoryBudget(10**9)))


def test_settings_defaults_match_the_issue() -> None:
    s = Settings.from_env({})
    assert s.listen == ("127.0.0.1", 3100)
    assert str(s.upstream) == "http://127.0.0.1:3000"
    assert s.max_upload_bytes == 100 * 1024 * 1024
    assert s.metrics_listen == ("127.0.0.1", 9464)
    assert s.data_dir == Path("var") and s.policy_path == Path("config/policy.toml")
    assert s.banks_dir == Path("config/banks")


def test_settings_report_every_bad_value() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(
            {"GATE_LISTEN": "nope", "GATE_MAX_UPLOAD_BYTES": "-3", "GATE_TRUSTED_PROXIES": "10.0.0.0/33"}
        )
    text = str(err.value)
    assert "GATE_LISTEN='nope'" in text and "GATE_MAX_UPLOAD_BYTES='-3'" in text and "10.0.0.0/33" in text


def test_settings_want_a_budget_of_two_copies_of_the_largest_upload() -> None:
    """The gate's copy and its hashing worker's are both counted: a smaller budget would refuse the
    largest uploads every time, so it does not start."""
    with pytest.raises(SettingsError, match="at least twice GATE_MAX_UPLOAD_BYTES"):
        Settings.from_env({"GATE_MAX_UPLOAD_BYTES": "1M", "GATE_MEMORY_BUDGET_BYTES": "1M"})
    s = Settings.from_env({"GATE_MAX_UPLOAD_BYTES": "1M", "GATE_MEMORY_BUDGET_BYTES": "2M"})
    assert s.memory_budget_bytes == 2 * s.max_upload_bytes


def test_settings_env_file_under_environment(tmp_path: Path) -> None:
    f = tmp_path / "gate.env"
    f.write_text('# comment\nexport GATE_LISTEN="0.0.0.0:8080"\nGATE_MAX_UPLOAD_BYTES=5M\n')
    s = Settings.from_env({"GATE_MAX_UPLOAD_BYTES": "7M"}, env_file=f)
    assert s.listen == ("0.0.0.0", 8080) and s.max_upload_bytes == 7 * 1024 * 1024
