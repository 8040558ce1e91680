"""Real TLS fronts for the end-to-end suite: Debian's nginx and Caddy running the shipped configs.

The configs under ``deploy/`` are used as shipped; the only edits are the ones an operator makes
(ports, certificate paths, host name), done by exact string replacement that fails if the shipped file
no longer contains the string — so the tests cannot drift from the files operators copy.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import os
import shutil
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.procs import LOOPBACK, Proc, free_port
from tests.support.nginx import command as nginx_command

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
HOST = "localhost"  # the name clients use; certificates are issued for it


@dataclass
class Front:
    name: str
    proc: Proc
    port: int
    ssl_context: ssl.SSLContext

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"


def template(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"the shipped config no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def need(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if path is None:
        pytest.fail(
            f"{binary} is not installed (apt-get install nginx-light caddy; .ci/run does)", pytrace=False
        )
    return path


def self_signed(workdir: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def start_nginx(variant: str, workdir: Path, gate_port: int, pds_port: int) -> Front:
    """``variant`` is a file in deploy/nginx/ (the default, gate routes only, or the whole site)."""
    binary = need("nginx")
    root = workdir / f"nginx-{Path(variant).stem}"
    root.mkdir()
    cert, key = self_signed(root)
    https_port, http_port = free_port(), free_port()
    site = template(
        (DEPLOY / "nginx" / variant).read_text(),
        {
            "listen 443 ssl": f"listen {LOOPBACK}:{https_port} ssl",
            "listen 80;": f"listen {LOOPBACK}:{http_port};",
            "server 127.0.0.1:3100;": f"server {LOOPBACK}:{gate_port};",
            "/etc/letsencrypt/live/pds.example.com/fullchain.pem": str(cert),
            "/etc/letsencrypt/live/pds.example.com/privkey.pem": str(key),
        }
        | ({} if "whole-site" in variant else {"server 127.0.0.1:3000;": f"server {LOOPBACK}:{pds_port};"}),
    )
    (root / "site.conf").write_text(site)
    # The part of /etc/nginx/nginx.conf a distribution provides, pointed at a private directory.
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (root / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    access_log {root / "access.log"};
{temp}
    include {root / "site.conf"};
}}
"""
    )
    proc = Proc(
        f"nginx ({variant})",
        nginx_command(binary, root),
        root / "stderr.log",
    )
    context = ssl.create_default_context(cafile=str(cert))
    front = Front(f"nginx:{variant}", proc, https_port, context)
    proc.wait_until(lambda: _tls_ready(https_port, context))
    return front


def start_caddy(variant: str, workdir: Path, gate_port: int, pds_port: int) -> Front:
    """``variant`` is a file in deploy/caddy/ (the default, gate routes only, or the whole site): the
    installer's on-demand TLS, issued by Caddy's own local CA here."""
    binary = need("caddy")
    root = workdir / variant.lower().replace(".", "-")
    root.mkdir()
    https_port, http_port = free_port(), free_port()
    caddyfile = template(
        (DEPLOY / "caddy" / variant).read_text(),
        {
            "pds.example.com": HOST,
            "http://localhost:3000/tls-check": f"http://{LOOPBACK}:{pds_port}/tls-check",
            "http://localhost:3100": f"http://{LOOPBACK}:{gate_port}",
            # Test-only global options: no admin endpoint (several runs share this machine), loopback
            # ports, a private storage directory, and the local CA instead of a public ACME CA (no
            # internet). On-demand issuance still asks the PDS's tls-check first.
            "\ton_demand_tls {": (
                f"\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\tdefault_bind {LOOPBACK}\n"
                f"\thttp_port {http_port}\n\thttps_port {https_port}\n"
                f"\tstorage file_system {root / 'storage'}\n\ton_demand_tls {{"
            ),
        }
        | (
            {}
            if "whole-site" in variant
            else {"reverse_proxy http://localhost:3000": f"reverse_proxy http://{LOOPBACK}:{pds_port}"}
        ),
    )
    (root / "Caddyfile").write_text(caddyfile)
    env = dict(
        os.environ, HOME=str(root), XDG_DATA_HOME=str(root / "data"), XDG_CONFIG_HOME=str(root / "config")
    )
    proc = Proc(
        "caddy",
        [binary, "run", "--adapter", "caddyfile", "--config", str(root / "Caddyfile")],
        root / "caddy.log",
        env=env,
    )
    # The first handshake makes Caddy ask the PDS's tls-check and issue a certificate from its local CA;
    # from then on the CA's root is on disk and clients verify against it.
    root_cert = root / "storage" / "pki" / "authorities" / "local" / "root.crt"
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    proc.wait_until(lambda: _tls_ready(https_port, unverified) and root_cert.exists())
    context = ssl.create_default_context(cafile=str(root_cert))
    proc.wait_until(lambda: _tls_ready(https_port, context))
    return Front(f"caddy:{variant}", proc, https_port, context)


def _tls_ready(port: int, context: ssl.SSLContext) -> bool:
    try:
        with (
            socket.create_connection((LOOPBACK, port), timeout=2) as sock,
            context.wrap_socket(sock, server_hostname=HOST),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False
