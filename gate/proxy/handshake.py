"""A websocket's opening handshake with the PDS, on a connection of the gate's own: the client's
``GET`` sent once, and the PDS's answer head read off the socket by hand.

Why not aiohttp's client: after a ``101`` the PDS's first frames often share the answer's packet, and
aiohttp keeps those bytes in a private buffer of its response parser. Reading the head here keeps
them in hand for the tunnel (``gate.proxy.tunnel``), which then copies bytes both ways.

Trust boundary, both directions:
- The client's handshake headers (``Sec-WebSocket-Key``/``-Version``/``-Protocol``/``-Extensions``)
  go to the PDS unchanged, so the PDS — not the gate — accepts or refuses the client, and whatever
  they agree on (sub-protocol, compression) is theirs: the gate never reads a frame. ``Upgrade`` and
  ``Connection`` are the gate's own (``websocket``), so the PDS can switch to nothing else.
- The connection carries exactly this one request. Any answer but ``101`` closes it: a client must
  never get a raw HTTP connection to the PDS, where an upload would pass unjudged.
- The PDS's answer is bounded (``MAX_HEAD``) and parsed strictly; anything else is a 502.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass

from multidict import CIMultiDict
from yarl import URL

from gate.errors import UpstreamFailure, UpstreamTimeout

# Largest answer head taken from the PDS (aiohttp's own client allows 8 KB per line, 32 KB of fields).
MAX_HEAD = 64 * 1024
# A refusal's body (a 400/404 with a declared length) is relayed up to this size; past it, or without
# a length, the client gets the status and headers with an empty body.
MAX_BODY = 64 * 1024
# A token (RFC 9110 §5.6.2): a header name, nothing else.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: ([\t\x20-\x7e\x80-\xff]*))?")
# Field values: visible bytes, spaces and tabs (RFC 9110 §5.5); no CR, LF, NUL or other controls.
_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: CIMultiDict[str]
    # After a 101: the first bytes of the tunnel (frames that came in the answer's packets).
    # Otherwise: the answer's body (empty unless its declared length is at most MAX_BODY).
    rest: bytes
    ended: bool = False  # the PDS had already sent EOF


class _Reader(asyncio.Protocol):
    """Collects the PDS's bytes until the answer can be read; never more than MAX_HEAD + MAX_BODY
    (then it stops reading: the tunnel resumes it)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.ended = False
        self._transport: asyncio.Transport | None = None
        self._more: asyncio.Event = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= MAX_HEAD + MAX_BODY and self._transport is not None:
            self._transport.pause_reading()
        self._more.set()

    def eof_received(self) -> bool:
        self.ended = True
        self._more.set()
        return True  # the caller closes it

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._more.set()

    def hold(self) -> None:
        """Stop reading: what comes next is the tunnel's (it resumes reading once it holds the
        connection); what is in ``buffer`` now is all this reader will ever have."""
        if self._transport is not None:
            self._transport.pause_reading()

    async def more(self) -> None:
        """Wait for more bytes (or the end); raises UpstreamFailure once the PDS has ended."""
        if self.ended:
            raise UpstreamFailure()
        self._more.clear()
        await self._more.wait()


def request_head(method: str, target: str, headers: CIMultiDict[str]) -> bytes:
    """The handshake request as sent: ``target`` is an origin form (``gate.proxy.target``: visible
    ASCII only), header values as the client sent them (aiohttp decodes them with surrogateescape)."""
    parts = [method, target, *headers.keys(), *headers.values()]
    # aiohttp's parser never yields these, but this head goes to the PDS verbatim: refuse to forge a line.
    if any(c in part for part in parts for c in "\r\n\0"):
        raise UpstreamFailure()
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Connection: Upgrade", "Upgrade: websocket", "", ""]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


def parse_head(raw: bytes) -> tuple[int, str, CIMultiDict[str]]:
    """Status, reason and headers of an answer head (without its final blank line); ValueError if it
    is not a well-formed HTTP/1.x answer."""
    status_line, *fields = raw.split(b"\r\n")
    found = _STATUS.fullmatch(status_line)
    if found is None:
        raise ValueError("status line")
    headers: CIMultiDict[str] = CIMultiDict()
    for field in fields:
        name, colon, value = field.partition(b":")
        value = value.strip(b" \t")
        if not colon or _TOKEN.fullmatch(name) is None or _VALUE.fullmatch(value) is None:
            raise ValueError("header field")  # obsolete line folding included: a name cannot start with SP
        headers.add(name.decode("ascii"), value.decode("utf-8", "surrogateescape"))
    return int(found[1]), (found[2] or b"").decode("utf-8", "surrogateescape"), headers


async def connect(
    base: URL, context: ssl.SSLContext | None, head: bytes, connect_within: float, answer_within: float
) -> tuple[asyncio.Transport, Answer]:
    """Open a connection to the PDS, send ``head`` and read its answer. After a 101 the returned
    transport is not reading (the tunnel resumes it) and the caller owns it; after any other answer
    it is already closing."""
    loop = asyncio.get_running_loop()
    assert base.host is not None and base.port is not None
    try:
        async with asyncio.timeout(connect_within):
            transport, reader = await loop.create_connection(
                _Reader, base.host, base.port, ssl=context, server_hostname=base.host if context else None
            )
    except TimeoutError:
        raise UpstreamTimeout() from None
    except OSError:
        raise UpstreamFailure() from None
    try:
        transport.write(head)
        async with asyncio.timeout(answer_within):
            answer = await _answer(reader)
    except TimeoutError:
        transport.abort()
        raise UpstreamTimeout() from None
    except BaseException:
        transport.abort()
        raise
    if answer.status != 101:
        transport.close()
    return transport, answer


async def _answer(reader: _Reader) -> Answer:
    while (end := reader.buffer.find(b"\r\n\r\n", 0, MAX_HEAD)) < 0:
        if len(reader.buffer) >= MAX_HEAD:
            raise UpstreamFailure()
        await reader.more()
    try:
        status, reason, headers = parse_head(bytes(reader.buffer[:end]))
    except ValueError:
        raise UpstreamFailure() from None
    start = end + 4
    if 100 <= status < 200 and status != 101:
        raise UpstreamFailure()  # no Expect was sent: an interim answer here is not an answer
    if status == 101:
        reader.hold()
        return Answer(status, reason, headers, bytes(reader.buffer[start:]), reader.ended)
    length = headers.get("Content-Length", "")
    body = b""
    if (
        length.isascii()
        and length.isdigit()
        and int(length) <= MAX_BODY
        and "Transfer-Encoding" not in headers
    ):
        while len(reader.buffer) - start < int(length):
            await reader.more()
        body = bytes(reader.buffer[start : start + int(length)])
    return Answer(status, reason, headers, body)
