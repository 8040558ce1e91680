"""The websocket handshake's own HTTP: the request head sent to the PDS, the answer head read back."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gate.errors import UpstreamFailure
from gate.proxy.handshake import parse_head, request_head


def test_request_head_is_the_client_handshake_with_the_gates_upgrade() -> None:
    headers = CIMultiDict([("Host", "pds.example"), ("Sec-WebSocket-Key", "k=="), ("X-Caf\u00e9", "ok")])
    head = request_head("GET", "/xrpc/com.atproto.sync.subscribeRepos?cursor=5", headers)
    assert head == (
        b"GET /xrpc/com.atproto.sync.subscribeRepos?cursor=5 HTTP/1.1\r\nHost: pds.example\r\n"
        b"Sec-WebSocket-Key: k==\r\nX-Caf\xc3\xa9: ok\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b"])
def test_request_head_never_carries_a_forged_line(value: str) -> None:
    with pytest.raises(UpstreamFailure):
        request_head("GET", "/", CIMultiDict([("X-Anything", value)]))


@pytest.mark.parametrize(
    ("raw", "status", "reason", "fields"),
    [
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket",
            101,
            "Switching Protocols",
            [("Upgrade", "websocket")],
        ),
        (b"HTTP/1.0 400", 400, "", []),
        (
            b"HTTP/1.1 404 Not Found\r\nA:  spaced \t\r\nA: two",
            404,
            "Not Found",
            [("A", "spaced"), ("A", "two")],
        ),
        (b"HTTP/1.1 200 OK\r\nEmpty:", 200, "OK", [("Empty", "")]),
    ],
)
def test_parse_head_reads_a_well_formed_answer(
    raw: bytes, status: int, reason: str, fields: list[tuple[str, str]]
) -> None:
    got_status, got_reason, headers = parse_head(raw)
    assert (got_status, got_reason, list(headers.items())) == (status, reason, fields)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/2 101 x",  # not HTTP/1.x
        b"HTTP/1.1 99 x",
        b"HTTP/1.1 101x",
        b"SSH-2.0-OpenSSH",
        b"HTTP/1.1 101 OK\r\nNo colon",
        b"HTTP/1.1 101 OK\r\nBad Name: x",
        b"HTTP/1.1 101 OK\r\n folded: x",  # obsolete line folding
        b"HTTP/1.1 101 OK\r\nA: b\nInjected: c",  # a bare LF inside a field
        b"HTTP/1.1 101 OK\r\nA: b\0",
        b"HTTP/1.1 101 OK\r\n: empty-name",
    ],
)
def test_parse_head_refuses_anything_else(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_head(raw)
