"""The request-target table: what is routed (and forwarded) for each form, and what is refused."""

from __future__ import annotations

import pytest

from gate.errors import InvalidRequest
from gate.proxy.routing import is_upload
from gate.proxy.target import origin_form


@pytest.mark.parametrize(
    ("raw", "origin"),
    [
        ("/xrpc/com.atproto.repo.uploadBlob", "/xrpc/com.atproto.repo.uploadBlob"),
        ("/xrpc/x?q=a\\b", "/xrpc/x?q=a\\b"),  # a backslash in the query routes nothing
        ("http://h/xrpc/com.atproto.repo.uploadBlob", "/xrpc/com.atproto.repo.uploadBlob"),
        ("HTTPS://u:p@h:8443/XRPC/a?b=c", "/XRPC/a?b=c"),
        ("ftp://h/xrpc/a", "/xrpc/a"),  # Node accepts any scheme, and routes its path
        ("http://h", "/"),
        ("http://h?/xrpc/com.atproto.repo.uploadBlob", "/?/xrpc/com.atproto.repo.uploadBlob"),
        ("//u@h/xrpc/a", "//u@h/xrpc/a"),
    ],
)
def test_routed_targets(raw: str, origin: str) -> None:
    assert origin_form(raw) == origin


@pytest.mark.parametrize(
    "raw",
    [
        "/xrpc\\com.atproto.repo.uploadBlob#x",
        "/xrpc/com.atproto.repo.uploadBlob#x",
        "/xrpc/com.atproto.repo.uploadBlob\\",
        "//u@h/xrpc/com.atproto.repo.uploadBlob#",
        "http://h\\xrpc/com.atproto.repo.uploadBlob",
        "http://h/xrpc\\com.atproto.repo.uploadBlob",
        "/xrpc/a b",
        "/xrpc/a\t",
        "/xrpc/a\xa0",
        "/xrpc/a\ufeff",
        "/xrpc/a\x7f",
        "*",
        "h:80",
        "http:/xrpc/a",
        "",
    ],
)
def test_refused_targets(raw: str) -> None:
    with pytest.raises(InvalidRequest, match="Unsupported request target"):
        origin_form(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "http://h/xrpc/com.atproto.repo.uploadBlob",
        "HTTP://h/XRPC/COM.ATPROTO.REPO.UPLOADBLOB/?x",
        "/xrpc%5Ccom.atproto.repo.uploadBlob",  # over-caught: a scan, never a bypass
    ],
)
def test_absolute_and_encoded_spellings_are_uploads(raw: str) -> None:
    assert is_upload("POST", origin_form(raw))
