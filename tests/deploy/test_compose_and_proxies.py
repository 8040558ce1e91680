"""deploy/compose, deploy/caddy and deploy/nginx: the properties the README promises, checked offline.

The proxies are also run for real by tests/e2e; here: the compose topology (PDS unpublished, HMA and
Postgres private), the Caddyfiles accepted by Debian's Caddy, the installer's Caddyfile turned into
the shipped ones (by the README's own command for the default), and the nginx directives the facts
file calls for.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.settings import Settings, parse_size
from tests.deploy import launch

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS_ENV = {f.metadata["env"] for f in fields(Settings)}
SECRET_ENV = {f.metadata["env"] for f in fields(Settings) if f.metadata["secret"]} | {"DATABASE_URL"}

# The Caddyfile the official installer (bluesky-social/pds installer.sh) writes, with example values.
INSTALLER_CADDYFILE = """{
\temail admin@pds.example.com
\ton_demand_tls {
\t\task http://localhost:3000/tls-check
\t}
}

*.pds.example.com, pds.example.com {
\ttls {
\t\ton_demand
\t}
\treverse_proxy http://localhost:3000
}
"""


def compose(name: str = "compose.yaml") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / name).read_text())
    return data


def caddy() -> str:
    path = shutil.which("caddy")
    if path is None:
        pytest.fail("caddy is not installed (apt-get install caddy; .ci/run does)", pytrace=False)
    return path


def adapt(caddyfile: Path, **env: str) -> None:
    result = subprocess.run(
        [caddy(), "adapt", "--adapter", "caddyfile", "--config", str(caddyfile)],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_publishes_only_caddy_and_keeps_hma_and_postgres_private() -> None:
    spec = compose()
    services, networks = spec["services"], spec["networks"]
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"caddy"}
    assert not services["pds"].get("network_mode")
    for private in ("hma", "hma-migrate", "postgres"):
        svc_networks = services[private]["networks"]
        reachable = [n for n in svc_networks if not (networks[n] or {}).get("internal")]
        # HMA's one non-internal network is its egress for exchange fetches: nothing else is on it.
        for net in reachable:
            assert private == "hma" and net == "hma-egress", (private, net)
            assert [s for s, svc in services.items() if net in svc.get("networks", [])] == ["hma"]
    # The gate is the only bridge between the edge and the private network.
    assert set(services["gate"]["networks"]) == {"edge", "private"}
    assert "private" not in services["caddy"]["networks"] and "private" not in services["pds"]["networks"]


def test_compose_gate_uses_known_settings_and_shipped_files() -> None:
    gate = compose()["services"]["gate"]
    for key, value in gate["environment"].items():
        assert key in SETTINGS_ENV or key == "DATABASE_URL", key
        if key in SECRET_ENV:
            assert "${" in value, f"{key}: secrets come from .env, never from this file"
    assert gate["environment"]["GATE_UPSTREAM"] == "http://pds:3000"
    for volume in gate["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (DEPLOY / "compose" / source).resolve().exists(), source
    assert (DEPLOY / "compose" / gate["build"]["context"] / "Dockerfile").exists()


@pytest.mark.parametrize("file", ["compose.yaml", "installer.yaml"])
def test_the_keyring_persists_on_a_mount_of_its_own(file: str) -> None:
    """The image creates the keyring where GATE_EVIDENCE_KEYS_FILE points; the compose files keep that
    directory on a writable volume apart from the data one (backed up apart from the database).
    tests/e2e/test_deployments.py runs both files and recreates the container."""
    deployment = launch.compose(file, "gate", {"GATE_DB_PASSWORD": "x", "HMA_DB_PASSWORD": "x"})
    env = deployment.main.env
    mounts = {m.target: m for m in deployment.main.mounts}  # a later mount hides an earlier one
    keys = mounts[str(Path(env["GATE_EVIDENCE_KEYS_FILE"]).parent)]
    data = mounts[env["GATE_DATA_DIR"]]
    assert keys.kind in ("volume", "bind") and not keys.read_only
    assert data.kind in ("volume", "bind") and keys.source != data.source


def test_installer_overlay_matches_the_shipped_caddyfile() -> None:
    gate = compose("installer.yaml")["services"]["gate"]
    env = gate["environment"]
    assert gate["network_mode"] == "host"
    for key in env:
        assert key in SETTINGS_ENV, key
    caddyfile = (DEPLOY / "caddy" / "Caddyfile").read_text()
    listen_port = env["GATE_LISTEN"].rpartition(":")[2]
    upstream_port = env["GATE_UPSTREAM"].rpartition(":")[2]
    assert f"reverse_proxy http://localhost:{listen_port}" in caddyfile
    assert f"ask http://localhost:{upstream_port}/tls-check" in caddyfile  # still answered by the PDS


def uncommented(path: Path) -> str:
    return "".join(line + "\n" for line in path.read_text().splitlines() if not line.startswith("#"))


def test_whole_site_caddyfile_is_the_installers_with_one_line_changed() -> None:
    shipped = uncommented(DEPLOY / "caddy" / "Caddyfile.whole-site").splitlines()
    original = INSTALLER_CADDYFILE.splitlines()
    assert len(shipped) == len(original)
    changed = [(a, b) for a, b in zip(original, shipped, strict=True) if a != b]
    assert changed == [("\treverse_proxy http://localhost:3000", "\treverse_proxy http://localhost:3100")]


def test_the_readmes_install_step_turns_the_installers_caddyfile_into_the_shipped_one(tmp_path: Path) -> None:
    """Step 4 of "Adding the gate to an installer-based PDS", run as written on the installer's file."""
    readme = (DEPLOY.parent / "README.md").read_text()
    start = readme.index("sudo sed -i.before-upload-gate")
    command = readme[start : readme.index("/pds/caddy/etc/caddy/Caddyfile", start)].replace("\\\n", " ")
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(INSTALLER_CADDYFILE)
    sed = command.removeprefix("sudo ") + str(caddyfile)
    result = subprocess.run(["bash", "-c", sed], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert caddyfile.read_text() == uncommented(DEPLOY / "caddy" / "Caddyfile")
    # Backing out, as the README says: the original comes back from the copy sed kept.
    assert (tmp_path / "Caddyfile.before-upload-gate").read_text() == INSTALLER_CADDYFILE


def test_caddyfiles_are_accepted_by_caddy() -> None:
    adapt(DEPLOY / "caddy" / "Caddyfile")
    adapt(DEPLOY / "caddy" / "Caddyfile.whole-site")
    adapt(DEPLOY / "compose" / "Caddyfile", PDS_HOSTNAME="pds.example.com", PDS_ADMIN_EMAIL="a@example.com")


@pytest.mark.parametrize("variant", ["upload-gate.conf", "upload-gate-whole-site.conf"])
def test_nginx_site_has_what_the_pds_path_needs(variant: str) -> None:
    text = (DEPLOY / "nginx" / variant).read_text()
    body_limit = re.search(r"client_max_body_size (\w+);", text)
    assert body_limit is not None
    assert parse_size(body_limit.group(1)) > Settings.from_env({}).max_upload_bytes
    for directive in (
        "proxy_request_buffering off;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header X-Forwarded-For $remote_addr;",  # overwrite, never $proxy_add_x_forwarded_for
        "proxy_set_header Host $http_host;",
        "proxy_read_timeout 1h;",
        "ssl_certificate ",
    ):
        assert directive in text, directive
    assert "proxy_add_x_forwarded_for" not in text


def test_default_nginx_sends_the_judged_routes_to_the_gate_and_the_rest_to_the_pds() -> None:
    """The location regex against the decoded paths nginx matches (tests/e2e runs the real thing)."""
    text = (DEPLOY / "nginx" / "upload-gate.conf").read_text()
    match = re.search(r"location ~\* (\S+) \{\s*proxy_pass http://upload_gate;", text)
    assert match is not None
    assert re.search(r"location / \{\s*proxy_pass http://pds;", text)
    pattern = re.compile(match.group(1), re.IGNORECASE)
    for path in (
        "/xrpc/com.atproto.repo.uploadBlob",
        "/XRPC/COM.ATPROTO.REPO.UPLOADBLOB/",
        "/xrpc\\com.atproto.repo.uploadblob",
        "/xrpc/com.atproto.sync.getBlob",
        "/xrpc/COM.ATPROTO.SYNC.GETBLOB/",
    ):
        assert pattern.search(path), path
    for path in (
        "/xrpc/com.atproto.sync.subscribeRepos",
        "/xrpc/com.atproto.repo.createRecord",
        "/oauth/par",
    ):
        assert not pattern.search(path), path
