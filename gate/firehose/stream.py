"""``RepoStream``: ``com.atproto.sync.subscribeRepos`` through the atproto SDK's firehose client — its
connection, keep-alive and reconnection with back-off — handing the watcher each message undecoded.

Two things are the watcher's, not the SDK's defaults: decoding (the SDK drops frames it cannot decode
without a trace, and ends the subscription on the stream's own error frames; ``gate.firehose.events``
counts the first and acts on the second), and the cursor each (re)connection starts from, asked of the
watcher just before it dials.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from atproto_firehose import AsyncFirehoseSubscribeReposClient
from yarl import URL

OnMessage = Callable[[bytes | str], Awaitable[None]]


def xrpc_base(service: str) -> str:
    """``wss://host`` (or an http(s) URL: the same host's websocket) → ``wss://host/xrpc``."""
    url = URL(service)
    scheme = {"http": "ws", "https": "wss"}.get(url.scheme, url.scheme)
    if scheme not in ("ws", "wss") or not url.host:
        raise ValueError(f"{service!r}: expected a wss:// (or ws://) URL of a PDS or relay")
    return str(url.with_scheme(scheme).with_path("/xrpc").with_query(None))


class RepoStream(AsyncFirehoseSubscribeReposClient):  # type: ignore[misc]  # the SDK is untyped
    def __init__(self, service: str, cursor: Callable[[], int | None]) -> None:
        # recv_timeout None: a quiet PDS may go hours without a commit; the websocket's own pings find a
        # dead connection.
        super().__init__(base_uri=xrpc_base(service), recv_timeout=None)
        self._cursor = cursor

    async def _before_connect(self) -> None:
        seq = self._cursor()
        self.update_params({} if seq is None else {"cursor": seq})

    def _decode_frame(self, raw_frame: Any) -> Any:
        return raw_frame  # decoded by the watcher (gate.firehose.events), which counts what fails

    async def run(self, on_message: OnMessage) -> None:
        await self.start(on_message)
