"""A websocket's opening handshake with the PDS, on a connection of the gate's own: the client's
``GET`` sent once, and the PDS's answer read back, both through h11 (python-hyper's HTTP/1.1 state
machine, no I/O of its own): HTTP/1.1 framing at the trust boundary is not hand-parsed.

Why not aiohttp's client: after a ``101`` the PDS's first frames often share the answer's packet, and
aiohttp keeps those bytes in a private buffer of its response parser. h11 gives them back
(``trailing_data``) for the tunnel (``gate.proxy.tunnel``), which then copies bytes both ways.

Trust boundary, both directions:
- The client's handshake headers (``Sec-WebSocket-Key``/``-Version``/``-Protocol``/``-Extensions``)
  go to the PDS unchanged, so the PDS — not the gate — accepts or refuses the client, and whatever
  they agree on (sub-protocol, compression) is theirs: the gate never reads a frame. ``Upgrade`` and
  ``Connection`` are the gate's own (``websocket``), so the PDS can switch to nothing else. h11
  refuses to send a name that is not a token, or a value or target holding CR, LF or NUL: no line
  the client did not send as one reaches the PDS.
- The connection carries exactly this one request. Any answer but ``101`` closes it: a client must
  never get a raw HTTP connection to the PDS, where an upload would pass unjudged.
- The PDS's answer is bounded (``MAX_HEAD``; a refusal's body ``MAX_BODY``) and must be HTTP/1.0 or
  1.1 that h11 reads without complaint, with a status of RFC 9110's (100–599; h11 takes up to 999)
  and no interim answer but the 101: anything else is a 502. h11 reads it as RFC 9112 lets a client
  (a bare LF ends a line, an obsolete fold is unfolded): the client gets the fields as the gate read
  them, written afresh by aiohttp, so it cannot read them differently.

A handshake the PDS does not complete in time is a 504; otherwise a ``HandshakeFailure`` (502) whose
``cause`` the gate logs: the type of what went wrong (``ConnectionRefusedError``,
``ConnectionResetError``, h11's ``RemoteProtocolError``), never a message — h11's quote the PDS's bytes,
and the request carries the client's.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import h11
from multidict import CIMultiDict
from yarl import URL

from gate.errors import UpstreamFailure, UpstreamTimeout

# Largest answer head taken from the PDS (aiohttp's own client allows 8 KB per line, 32 KB of fields).
MAX_HEAD = 64 * 1024
# A refusal's body (a 400/404) is relayed up to this size; past it (declared, or as it arrives) the
# client gets the status and headers with an empty body.
MAX_BODY = 64 * 1024
_VERSIONS = (b"1.0", b"1.1")
# The cause of a failure for an answer h11 reads and the gate does not take (the module's docstring).
BAD_ANSWER = "BadAnswer"


class HandshakeFailure(UpstreamFailure):
    """The PDS's websocket could not be reached or its answer not read: a 502 as any other, with
    ``cause`` for the gate's log (an exception's type name, or ``BAD_ANSWER``)."""

    def __init__(self, cause: str) -> None:
        super().__init__()
        self.cause = cause


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: CIMultiDict[str]
    # After a 101: the first bytes of the tunnel (frames that came in the answer's packets).
    # Otherwise: the answer's body (empty unless it fits MAX_BODY).
    rest: bytes
    ended: bool = False  # the PDS had already sent EOF


def _raw(text: str) -> bytes:
    # aiohttp decodes request headers as UTF-8 with surrogateescape: this gives back the client's bytes.
    return text.encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    # As aiohttp's client decodes the PDS's headers everywhere else in the proxy.
    return raw.decode("utf-8", "surrogateescape")


class Handshake:
    """The handshake's HTTP without I/O: ``request`` is what to send; ``feed`` takes the PDS's bytes
    (``b""`` for its EOF) and returns the answer once there is one.

    ``target`` is an origin form (``gate.proxy.target``: visible ASCII only); ``headers`` are sent as
    the client sent them, with the gate's ``Connection: Upgrade`` and ``Upgrade: websocket``.
    UpstreamFailure if h11 refuses to send them; HandshakeFailure (from ``feed``) if the PDS's answer
    is not one h11 reads or the gate takes.
    """

    def __init__(self, method: str, target: str, headers: CIMultiDict[str]) -> None:
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        try:
            fields = [(_raw(name), _raw(value)) for name, value in headers.items()]
            fields += [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]
            request = h11.Request(method=_raw(method), target=_raw(target), headers=fields)
            self.request = (self._conn.send(request) or b"") + (self._conn.send(h11.EndOfMessage()) or b"")
        except (h11.LocalProtocolError, UnicodeEncodeError):  # the latter: a str aiohttp never gives
            raise UpstreamFailure() from None
        self._fed = 0
        self._refusal: h11.Response | None = None
        self._body = bytearray()

    def feed(self, data: bytes) -> Answer | None:
        self._fed += len(data)
        self._conn.receive_data(data)
        try:
            return self._next()
        except h11.RemoteProtocolError as exc:
            raise HandshakeFailure(type(exc).__name__) from None

    def _next(self) -> Answer | None:
        while True:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.InformationalResponse):
                self._check_head(event)
                # No Expect was sent: an interim answer other than the switch is not an answer.
                if event.status_code != 101 or self._conn.their_state is not h11.SWITCHED_PROTOCOL:
                    raise HandshakeFailure(BAD_ANSWER)
                rest, ended = self._conn.trailing_data
                return self._answer(event, rest, ended)
            if isinstance(event, h11.Response):
                self._check_head(event)
                self._refusal = event
                # h11 has checked it (digits, one value); lower-cased names are h11's own.
                declared = next((v for n, v in event.headers if n == b"content-length"), None)
                if declared is not None and int(declared) > MAX_BODY:
                    return self._answer(event, b"")  # not waited for
            elif isinstance(event, h11.Data) and self._refusal is not None:
                self._body += event.data
                if len(self._body) > MAX_BODY:
                    return self._answer(self._refusal, b"")
            elif isinstance(event, h11.EndOfMessage) and self._refusal is not None:
                return self._answer(self._refusal, bytes(self._body))
            else:  # PAUSED or ConnectionClosed: cannot come before one of the above
                raise HandshakeFailure(BAD_ANSWER)

    def _check_head(self, event: h11.InformationalResponse | h11.Response) -> None:
        head_size = self._fed - len(self._conn.trailing_data[0])
        if event.http_version not in _VERSIONS or event.status_code >= 600 or head_size > MAX_HEAD:
            raise HandshakeFailure(BAD_ANSWER)

    @staticmethod
    def _answer(event: h11.InformationalResponse | h11.Response, rest: bytes, ended: bool = False) -> Answer:
        # raw_items: the names as the PDS spelled them (h11's own are lower-cased).
        headers = CIMultiDict(
            (name.decode("ascii"), _text(value)) for name, value in event.headers.raw_items()
        )
        return Answer(event.status_code, _text(event.reason), headers, rest, ended)


class _Reader(asyncio.Protocol):
    """Feeds the PDS's bytes to the handshake until it has the answer, then stops reading: what
    comes next is the tunnel's (it resumes reading once it holds the connection)."""

    def __init__(self, handshake: Handshake) -> None:
        self._handshake = handshake
        self._transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> bool:
        self._feed(b"")
        return True  # the caller closes it

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.answer.done():  # a reset: named as a refused connect is
            self.answer.set_exception(HandshakeFailure(type(exc).__name__))
        self._feed(b"")

    def _feed(self, data: bytes) -> None:
        # Once answered, reading is paused: asyncio passes no more bytes (nor the EOF) until the tunnel
        # has taken the connection over.
        if self.answer.done():
            return
        try:
            answer = self._handshake.feed(data)
        except HandshakeFailure as exc:
            self.answer.set_exception(exc)
            return
        if answer is not None:
            if self._transport is not None:
                self._transport.pause_reading()
            self.answer.set_result(answer)


async def connect(
    base: URL,
    context: ssl.SSLContext | None,
    handshake: Handshake,
    connect_within: float,
    answer_within: float,
) -> tuple[asyncio.Transport, Answer]:
    """Open a connection to the PDS, send the handshake and read its answer. After a 101 the returned
    transport is not reading (the tunnel resumes it) and the caller owns it; after any other answer
    it is already closing. UpstreamTimeout past a deadline; HandshakeFailure if it cannot be had."""
    loop = asyncio.get_running_loop()
    assert base.host is not None and base.port is not None
    try:
        async with asyncio.timeout(connect_within):
            transport, reader = await loop.create_connection(
                lambda: _Reader(handshake),
                base.host,
                base.port,
                ssl=context,
                server_hostname=base.host if context else None,
            )
    except TimeoutError:
        raise UpstreamTimeout() from None
    except OSError as exc:  # refused, reset, no route, a TLS certificate refused: named by type
        raise HandshakeFailure(type(exc).__name__) from None
    try:
        transport.write(handshake.request)
        async with asyncio.timeout(answer_within):
            answer = await reader.answer
    except TimeoutError:
        transport.abort()
        raise UpstreamTimeout() from None
    except BaseException:
        transport.abort()
        raise
    if answer.status != 101:
        transport.close()
    return transport, answer
