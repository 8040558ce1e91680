"""Debian's nginx (``nginx-light``, installed by tests/prereqs.sh) as a plain-HTTP reverse proxy in front of
one or more local upstreams, for the benchmarks that need a peer or a load balancer.

One worker process (the machine is small and shared; the gate's own front is measured the same way),
keep-alive to the upstreams, websockets passed through, request bodies streamed (as the shipped
deploy/nginx configs do for uploads) and responses through memory buffers, never spooled to disk; and an access log line per request naming the upstream that
answered (``$upstream_addr``), so a benchmark can tell how the load was spread.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Nginx:
    url: str
    access_log: Path

    def upstreams(self) -> Counter[str]:
        """Requests answered per upstream address (``127.0.0.1:port``), from the access log."""
        return Counter(line.split()[0] for line in self.access_log.read_text().splitlines() if line)


def binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def balancing(upstream_urls: Sequence[str]) -> Iterator[Nginx]:
    """nginx on a free loopback port, round robin over ``upstream_urls`` (``http://127.0.0.1:port``)."""
    exe = binary()
    if exe is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx-light; tests/prereqs.sh does)")
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        root = Path(tmp)
        port = _free_port()
        servers = "\n".join(f"        server {u.removeprefix('http://')};" for u in upstream_urls)
        temp = "\n".join(
            f"    {kind}_temp_path {root / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, nginx's workers run as "nobody" unless told otherwise; they must reach the temp dir.
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        (root / "nginx.conf").write_text(
            f"""{user}
worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$upstream_addr $status';
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    access_log {root / "access.log"} upstream;
{temp}
    upstream backends {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
            proxy_request_buffering off;
            # Responses through 64 KB buffers in memory, never spooled to disk: nginx's 4-8 KB default
            # halved a streamed download and slowed websocket frames, which would flatter the gate.
            proxy_buffer_size 64k;
            proxy_buffers 8 64k;
            proxy_busy_buffers_size 128k;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""
        )
        proc = subprocess.Popen(
            [
                exe,
                "-p",
                str(root),
                "-c",
                str(root / "nginx.conf"),
                "-e",
                str(root / "error.log"),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_listening(port, proc)
            yield Nginx(f"http://127.0.0.1:{port}", root / "access.log")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if proc.stderr is not None:
                proc.stderr.close()


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"nginx exited with {proc.returncode}: {err}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError("nginx never listened")
