"""Debian's nginx (``nginx-light``, installed by tests/prereqs.sh) as a plain-HTTP reverse proxy in front of
one or more local upstreams, for the benchmarks that need a peer or a load balancer.

One worker process (the machine is small and shared; the gate's own front is measured the same way),
keep-alive to the upstreams, websockets passed through, request bodies streamed (as the shipped
deploy/nginx configs do for uploads) and responses through memory buffers, never spooled to disk; and an access log line per request naming the upstream that
answered (``$upstream_addr``), so a benchmark can tell how the load was spread.

``shipped_site`` runs the shipped deploy/nginx/upload-gate.conf instead (the default front: only uploadBlob
and getBlob go to the gate), for the passthrough benchmark's "default fronts" row.
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

from tests.support.nginx import command as nginx_command

REPO = Path(__file__).resolve().parents[1]
SHIPPED_SITE = REPO / "deploy" / "nginx" / "upload-gate.conf"


@dataclass
class Nginx:
    url: str
    access_log: Path
    pid: int  # the master; its worker is its child (bench.procs.tree)

    def upstreams(self, requests: int = 0, timeout: float = 10.0) -> Counter[str]:
        """Requests answered per upstream address (``127.0.0.1:port``), from the access log.

        nginx writes a request's line after its answer has gone out, so a client that has read every
        answer can still be ahead of the log: wait until it holds at least ``requests`` lines and has
        stopped growing (or ``timeout`` passes; the caller's assertion then says what was missing)."""
        deadline = time.monotonic() + timeout
        seen = -1
        while True:
            lines = [line for line in self.access_log.read_text().splitlines() if line]
            if (len(lines) >= requests and len(lines) == seen) or time.monotonic() > deadline:
                return Counter(line.split()[0] for line in lines)
            seen = len(lines)
            time.sleep(0.1)


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
        (root / "nginx.conf").write_text(
            f"""{_head(root)}
    log_format upstream '$upstream_addr $status';
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    access_log {root / "access.log"} upstream;
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
        with _running(exe, root, port) as front:
            yield front


@contextlib.contextmanager
def shipped_site(gate_url: str, pds_url: str) -> Iterator[Nginx]:
    """nginx running the shipped site (deploy/nginx/upload-gate.conf: uploadBlob and getBlob to the gate,
    everything else straight to the PDS) on a free loopback port, in plain HTTP.

    The edits are the ones an operator makes (ports, upstream addresses), done by exact replacement that
    fails if the shipped file changes, plus one the benchmark needs: TLS is off (``ssl`` and the two
    certificate lines), so the front is compared with ``balancing`` (plain HTTP too) on routing and
    proxying alone. The access log names the upstream that answered each request.
    """
    exe = binary()
    if exe is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx-light; tests/prereqs.sh does)")
    with tempfile.TemporaryDirectory(prefix="bench-nginx-site-") as tmp:
        root = Path(tmp)
        port, redirect_port = _free_port(), _free_port()
        site = SHIPPED_SITE.read_text()
        for old, new in {
            "listen 443 ssl http2;": f"listen 127.0.0.1:{port};",
            "listen 80;": f"listen 127.0.0.1:{redirect_port};",
            "server 127.0.0.1:3100;": f"server {gate_url.removeprefix('http://')};",
            "server 127.0.0.1:3000;": f"server {pds_url.removeprefix('http://')};",
            "ssl_certificate     /etc/letsencrypt/live/pds.example.com/fullchain.pem;": "",
            "ssl_certificate_key /etc/letsencrypt/live/pds.example.com/privkey.pem;": "",
        }.items():
            if old not in site:
                raise RuntimeError(f"{SHIPPED_SITE} no longer contains {old!r}")
            site = site.replace(old, new)
        (root / "site.conf").write_text(site)
        (root / "nginx.conf").write_text(
            f"""{_head(root)}
    log_format upstream '$upstream_addr $status';
    access_log {root / "access.log"} upstream;
    include {root / "site.conf"};
}}
"""
        )
        with _running(exe, root, port) as front:
            yield front


def _head(root: Path) -> str:
    """What a distribution's nginx.conf provides, pointed at a private directory: up to ``http {``."""
    temp = "\n".join(
        f"    {kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers run as "nobody" unless told otherwise; they must reach the temp dir.
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
{temp}"""


@contextlib.contextmanager
def _running(exe: str, root: Path, port: int) -> Iterator[Nginx]:
    proc = subprocess.Popen(
        nginx_command(exe, root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, proc)
        yield Nginx(f"http://127.0.0.1:{port}", root / "access.log", proc.pid)
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
