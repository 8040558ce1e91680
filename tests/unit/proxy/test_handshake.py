"""The websocket handshake's own HTTP (h11 underneath): the request head sent to the PDS, the answer
read back — a 101 with the tunnel's first bytes, a refusal with its body, anything else a 502."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gate.errors import UpstreamFailure
from gate.proxy.handshake import BAD_ANSWER, MAX_BODY, MAX_HEAD, Answer, Handshake, HandshakeFailure

LONG = b"a" * MAX_HEAD
H11 = "RemoteProtocolError"  # the cause of a failure h11 finds (BAD_ANSWER: one the gate finds)
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a==\r\n\r\n"


def _shake() -> Handshake:
    return Handshake("GET", "/ws", CIMultiDict([("Host", "pds.example")]))


def _answer(*chunks: bytes) -> Answer:
    """The answer to ``chunks`` fed one after the other (``b""``: the PDS's EOF)."""
    shake = _shake()
    for chunk in chunks:
        answer = shake.feed(chunk)
        if answer is not None:
            return answer
    raise AssertionError("no answer")


def test_the_request_is_the_client_handshake_with_the_gates_upgrade() -> None:
    headers = CIMultiDict(
        [("Sec-WebSocket-Key", "k=="), ("Host", "pds.example"), ("X-Thing", "caf\u00e9"), ("X-Raw", "\udce9")]
    )
    shake = Handshake("GET", "/xrpc/com.atproto.sync.subscribeRepos?cursor=5", headers)
    assert shake.request == (
        b"GET /xrpc/com.atproto.sync.subscribeRepos?cursor=5 HTTP/1.1\r\nHost: pds.example\r\n"
        b"Sec-WebSocket-Key: k==\r\nX-Thing: caf\xc3\xa9\r\nX-Raw: \xe9\r\n"
        b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b", "\ud800"])
def test_the_request_never_carries_a_forged_line(value: str) -> None:
    with pytest.raises(UpstreamFailure):
        Handshake("GET", "/", CIMultiDict([("Host", "x"), ("X-Anything", value)]))


@pytest.mark.parametrize(
    ("target", "name"),
    [("/a b", "X-Ok"), ("/a\r\nX: 1", "X-Ok"), ("/", "Bad Name"), ("/", "X-Caf\u00e9"), ("/", "X:Y")],
)
def test_the_request_line_and_names_are_checked_too(target: str, name: str) -> None:
    with pytest.raises(UpstreamFailure):
        Handshake("GET", target, CIMultiDict([("Host", "x"), (name, "v")]))


def test_a_switch_hands_over_the_bytes_after_it() -> None:
    answer = _answer(SWITCH + b"\x82\x01a", b"")
    assert (answer.status, answer.reason, answer.rest, answer.ended) == (
        101,
        "Switching Protocols",
        b"\x82\x01a",
        False,  # answered at once: the EOF is the tunnel's to see
    )
    # The PDS's spelling of each name reaches the client (a lookup ignores case anyway).
    assert list(answer.headers.items()) == [("Upgrade", "websocket"), ("Sec-WebSocket-Accept", "a==")]


def test_a_switch_read_a_byte_at_a_time() -> None:
    shake = _shake()
    for i in range(len(SWITCH) - 1):
        assert shake.feed(SWITCH[i : i + 1]) is None
    answer = shake.feed(SWITCH[-1:])
    assert answer is not None and answer.status == 101 and answer.rest == b""


def test_a_switch_with_the_eof_in_the_same_reads() -> None:
    shake = _shake()
    assert shake.feed(SWITCH[:10]) is None
    answer = shake.feed(SWITCH[10:] + b"\x88\x02\x03\xe8")
    assert answer is not None and answer.rest == b"\x88\x02\x03\xe8"


@pytest.mark.parametrize(
    ("raw", "status", "reason", "fields", "body"),
    [
        (b"HTTP/1.0 400\r\nContent-Length: 2\r\n\r\nno", 400, "", [("Content-Length", "2")], b"no"),
        (
            b"HTTP/1.1 404 Not Found\r\nA:  spaced \t\r\nA: two\r\nContent-Length: 0\r\n\r\n",
            404,
            "Not Found",
            [("A", "spaced"), ("A", "two"), ("Content-Length", "0")],
            b"",
        ),
        (  # a chunked body that fits is relayed too
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n3\r\npe!\r\n0\r\n\r\n",
            403,
            "Forbidden",
            [("Transfer-Encoding", "chunked")],
            b"nope!",
        ),
        (b"HTTP/1.1 401 x\r\nEmpty:\r\n\r\nuntil EOF", 401, "x", [("Empty", "")], b"until EOF"),
        (b"HTTP/1.1 400 r\xe9ason\r\nX: caf\xe9\r\nContent-Length: 0\r\n\r\n", 400, "r\udce9ason", None, b""),
        # Obsolete line folding is unfolded (RFC 9112 §5.2): one field, never a second one.
        (b"HTTP/1.1 400 x\r\nA: b\r\n Injected: c\r\nContent-Length: 0\r\n\r\n", 400, "x", None, b""),
        # A bare LF ends a line (RFC 9112 §2.2): two fields, each whole, never one holding a LF.
        (
            b"HTTP/1.1 400 x\r\nA: b\nB: c\r\nContent-Length: 0\r\n\r\n",
            400,
            "x",
            [("A", "b"), ("B", "c"), ("Content-Length", "0")],
            b"",
        ),
    ],
    ids=["http/1.0", "fields", "chunked", "until-eof", "not-utf-8", "folded", "bare-lf"],
)
def test_a_refusal_comes_with_its_body(
    raw: bytes, status: int, reason: str, fields: list[tuple[str, str]] | None, body: bytes
) -> None:
    answer = _answer(raw, b"")
    assert (answer.status, answer.reason, answer.rest) == (status, reason, body)
    if fields is not None:
        assert list(answer.headers.items()) == fields
    assert "Injected" not in answer.headers
    if b"caf\xe9" in raw:
        assert answer.headers["X"] == "caf\udce9"  # the PDS's bytes, as aiohttp's client decodes them
    if b"Injected" in raw:
        assert answer.headers["A"] == "b Injected: c"


def test_a_refusal_declaring_a_large_body_is_answered_without_it() -> None:
    shake = _shake()
    answer = shake.feed(f"HTTP/1.1 400 x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode())
    assert answer is not None and (answer.status, answer.rest) == (400, b"")  # not waited for


@pytest.mark.parametrize(
    "framing",
    [f"Content-Length: {MAX_BODY + 1}", "Transfer-Encoding: chunked", "X-Until: eof"],
)
def test_a_refusal_body_past_the_bound_is_dropped(framing: str) -> None:
    over = b"x" * (MAX_BODY + 1)
    body = (b"%x\r\n" % len(over) + over + b"\r\n0\r\n\r\n") if "chunked" in framing else over
    head = f"HTTP/1.1 400 x\r\n{framing}\r\n\r\n".encode()
    shake = _shake()
    answer = shake.feed(head) or shake.feed(body)
    assert answer is not None and (answer.status, answer.rest) == (400, b"")


@pytest.mark.parametrize(
    ("chunks", "cause"),
    [
        pytest.param((b"HTTP/2 101 x\r\n\r\n",), H11, id="http/2"),  # not HTTP/1.x
        pytest.param((b"HTTP/2.0 101 x\r\n\r\n",), BAD_ANSWER, id="http/2.0"),
        pytest.param((b"HTTP/1.1 99 x\r\n\r\n",), H11, id="two-digits"),
        pytest.param((b"HTTP/1.1 600 x\r\nContent-Length: 0\r\n\r\n",), BAD_ANSWER, id="600"),
        pytest.param((b"HTTP/1.1 101x\r\n\r\n",), H11, id="glued-reason"),
        pytest.param((b"SSH-2.0-OpenSSH\r\n\r\n",), H11, id="not-http"),
        pytest.param((b"HTTP/1.1 101 OK\r\nNo colon\r\n\r\n",), H11, id="no-colon"),
        pytest.param((b"HTTP/1.1 101 OK\r\nBad Name: x\r\n\r\n",), H11, id="bad-name"),
        # a continuation with nothing to continue
        pytest.param((b"HTTP/1.1 101 OK\r\n folded: x\r\n\r\n",), H11, id="leading-fold"),
        pytest.param((b"HTTP/1.1 101 OK\r\nA: b\0\r\n\r\n",), H11, id="nul"),
        pytest.param((b"HTTP/1.1 101 OK\r\n: empty-name\r\n\r\n",), H11, id="empty-name"),
        # no Expect was sent
        pytest.param((b"HTTP/1.1 100 Continue\r\n\r\n" + SWITCH,), BAD_ANSWER, id="interim"),
        pytest.param((b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n", b""), H11, id="cut-short"),
        pytest.param((b"", b""), H11, id="nothing"),
        pytest.param((b"HTTP/1.1 400 x\r\nContent-Length: 9\r\n\r\nshort", b""), H11, id="body-cut-short"),
        pytest.param(
            (b"HTTP/1.1 400 x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",), H11, id="two-lengths"
        ),
        pytest.param((b"HTTP/1.1 400 x\r\nContent-Length: -1\r\n\r\n",), H11, id="negative-length"),
        # no framing the gate can read
        pytest.param((b"HTTP/1.1 400 x\r\nTransfer-Encoding: gzip\r\n\r\n",), H11, id="gzip-framing"),
        # over the bound, in one read (h11 reads it: the gate refuses it), or still incomplete (h11 does)
        pytest.param((b"HTTP/1.1 101 OK\r\nX: " + LONG + b"\r\n\r\n",), BAD_ANSWER, id="long-head"),
        pytest.param((b"HTTP/1.1 101 OK\r\nX: " + LONG, b"a"), H11, id="long-partial-head"),
    ],
)
def test_anything_else_is_a_failure(chunks: tuple[bytes, ...], cause: str) -> None:
    shake = _shake()
    with pytest.raises(HandshakeFailure) as failed:  # the failure may come with any chunk
        for chunk in chunks:
            assert shake.feed(chunk) is None
    # A type's name for the gate's log, never h11's message (it quotes the PDS's bytes).
    assert failed.value.cause == cause


def test_a_head_just_within_the_bound_is_read() -> None:
    start = b"HTTP/1.1 101 OK\r\nX: "
    head = start + b"a" * (MAX_HEAD - len(start) - 4) + b"\r\n\r\n"
    assert len(head) == MAX_HEAD
    answer = _answer(head)
    assert answer.status == 101 and len(answer.headers["X"]) == MAX_HEAD - len(start) - 4
