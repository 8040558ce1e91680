"""A lean HTTP/1.1 client for the PDS: keep-alive connections of its own, the answer parsed by llhttp
(``httptools``, the parser uvicorn uses, and the same llhttp aiohttp's client uses, with the same
leniencies), for the gate's busiest path — passthrough GETs without a body.

Why: a small GET through the gate was CPU-bound, and aiohttp's client side (``ClientSession.request``,
``ClientRequest``, ``ClientResponse``, the connector) was the largest share of it (measured:
docs/performance.md, "Passthrough, fourth pass"). Here the request is bytes the gate writes itself and
the answer comes back as a status, a reason, raw header pairs and body chunks.

It behaves as aiohttp's client does towards the PDS (``gate.proxy.upstream`` says what the gate sends):
- a connection whose answer ended with keep-alive (llhttp's decision) goes back to the pool
  (``gate.proxy.lane_pool``);
- interim 1xx answers are skipped; a 101 (no GET here asks for an upgrade) ends the answer at its head
  and the connection with it;
- bytes after an answer (an unasked-for second one) close the connection once that answer is relayed;
- body bytes buffered from the PDS stop the reading at ``HIGH_WATER`` until the gate takes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httptools

from gate.errors import Unavailable

HIGH_WATER = 1024 * 1024  # body bytes read ahead of the client before the PDS's socket is paused
# aiohttp's client limits (its parser's defaults): more, or longer, is a malformed answer.
MAX_HEADERS = 128
MAX_FIELD = 8190


class PdsAnswerError(Unavailable):
    """The PDS's answer to a passthrough GET on the lane could not be read."""


class PdsClosed(PdsAnswerError):
    """The PDS closed (or failed) the connection before the answer's head was complete."""


class PdsMalformed(PdsAnswerError):
    """The PDS's bytes are not an HTTP/1.1 answer llhttp accepts (as aiohttp's client would refuse it)."""


class PdsCut(PdsAnswerError):
    """The PDS closed (or failed) the connection, or sent malformed bytes, within an answer's body."""


class Connection(asyncio.Protocol):
    """One keep-alive connection to the PDS and the answer it is reading (the parser's callbacks)."""

    def __init__(self, forget: Callable[[Connection], None]) -> None:
        self._forget = forget  # told when the connection ends (the pool drops it)
        # Kept: asyncio.get_running_loop() asks the kernel for the process id each time (a system call)
        self.loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._parser.set_dangerous_leniencies(
            lenient_headers=True, lenient_optional_cr_before_lf=True, lenient_spaces_after_chunk_size=True
        )
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.begin()

    def begin(self) -> None:
        """Ready for the next answer."""
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False  # a final (non-1xx) head was read
        self.done = False  # the whole answer was read
        self.keep_alive = False
        self.until_eof = False  # framed by the end of the connection
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.error: Exception | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.done or self.error is not None:  # unasked-for bytes on an idle connection
            self._fail(PdsMalformed("bytes after the answer"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(PdsMalformed("an upgrade nobody asked for"))
        except httptools.HttpParserError as exc:
            self._fail(PdsMalformed(str(exc)))

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget(self)
        if self.done or self.error is not None:
            return
        if self.head_done and self.until_eof and exc is None:
            self.done = True  # an answer without length ends with its connection
        else:
            self.error = (
                PdsCut("connection closed in the body") if self.head_done else PdsClosed("connection closed")
            )
        self._wake()

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.done:  # a second answer to one request: this connection is not reused
            self.error = PdsMalformed("bytes after the answer")

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(self.headers) > MAX_HEADERS or len(name) > MAX_FIELD or len(value) > MAX_FIELD:
            raise PdsMalformed("headers too large")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # interim: its message completes at once, and the next one is read
        self.status = status
        self.head_done = True
        length = chunked = False
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length":
                length = True
            elif lower == b"transfer-encoding":
                chunked = value.rstrip().lower().endswith(b"chunked")
            elif lower == b"sec-websocket-key1":  # the old websocket draft's: aiohttp's parser refuses it
                raise PdsMalformed("an obsolete websocket header")
        self.until_eof = not (length or chunked)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered >= HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done:  # an interim answer ended: its head is not the answer's
            self.reason = b""
            self.headers = []
            return
        self.done = True
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    # the gate's side

    async def head(self) -> None:
        """Wait for the answer's head (status, reason, headers); PdsClosed or PdsMalformed."""
        while not self.head_done:
            if self.error is not None:
                raise self.error
            await self._wait()

    async def read(self) -> bytes:
        """The body bytes read so far and not yet taken; b"" once the answer is complete; PdsCut."""
        while not self.chunks:
            if self.done:
                return b""
            if self.error is not None:
                raise PdsCut(str(self.error))
            await self._wait()
        return self.take()

    async def body(self) -> AsyncIterator[bytes]:
        """The body's bytes as they come (``read`` until the answer is complete); PdsCut."""
        while chunk := await self.read():
            yield chunk

    async def more(self) -> None:
        """Wait until something more happens to the answer (body bytes, its end, an error)."""
        await self._wait()

    def take(self) -> bytes:
        """The body bytes read so far and not yet taken (all of them once ``done``)."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        transport = self.transport
        return (
            self.done
            and self.error is None
            and self.keep_alive
            and not self.chunks
            and transport is not None
            and not transport.is_closing()
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _wait(self) -> asyncio.Future[None]:
        self._waiter = self.loop.create_future()
        return self._waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        self.error = PdsCut(str(error)) if self.head_done else error
        self._wake()
        self.close()
