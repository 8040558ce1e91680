"""A stand-in in the gate's slot behind a front: a real HTTP server that records every request target
it receives and answers 200. With it, a routing test sees exactly which requests a front sends to the
gate and which straight to the PDS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.e2e.procs import LOOPBACK


class StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((LOOPBACK, 0), _Recorder)
        self.seen: list[tuple[str, str, str]] = []  # (probe header, method, raw target)
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def record(self, probe: str, method: str, target: str) -> None:
        with self._lock:
            self.seen.append((probe, method, target))

    def probes(self) -> set[str]:
        with self._lock:
            return {probe for probe, _, _ in self.seen}


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as nginx's and Caddy's upstream pools expect
    server: StandIn

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.record(self.headers.get("X-Probe", ""), self.command, self.path)
        body = b'{"standIn":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_OPTIONS = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
