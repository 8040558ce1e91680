"""Raw HTTP/1.1 requests whose request target goes on the wire exactly as written.

HTTP clients normalise targets (drop fragments, escape backslashes, resolve dot segments), which is
exactly what a bypass attempt avoids; so spellings are sent with a plain socket, over TLS to a front.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.e2e.endpoints import Endpoint


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes

    def error(self) -> str | None:
        """The XRPC error name, when the body is XRPC JSON."""
        try:
            doc = json.loads(self.body)
        except ValueError:
            return None
        return doc.get("error") if isinstance(doc, dict) else None


def send(endpoint: Endpoint, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Answer:
    url = urlsplit(endpoint.url)
    host, port = url.hostname or "127.0.0.1", url.port or 443
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        if url.scheme == "https":
            context = endpoint.verify if isinstance(endpoint.verify, ssl.SSLContext) else None
            sock = (context or ssl.create_default_context()).wrap_socket(sock, server_hostname=host)
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    return parse(data)


def parse(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return Answer(int(status_line.split(" ", 2)[1]), headers, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out
