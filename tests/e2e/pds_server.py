"""The real PDS for the end-to-end suite: install the pinned npm packages once, start, stop.

``tests/e2e/pds/package.json`` and its lockfile pin ``@atproto/pds`` and ``@did-plc/server``. They are
installed with ``npm ci`` into ``tests/e2e/.pds/`` (git-ignored) and reinstalled only when the lockfile
changes. No Node, no npm or no registry is a loud failure, never a skip: these tests are the proof that the
gate works in front of the real thing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate.settings import read_env_file
from tests.e2e.procs import LOOPBACK, Proc

HERE = Path(__file__).parent
SOURCE = HERE / "pds"
INSTALL = HERE / ".pds"
FILES = ("package.json", "package-lock.json", "run-pds.js")


def install() -> Path:
    """``npm ci`` the pinned PDS into the ignored tree (once per lockfile) and return that directory."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not on PATH: the end-to-end tests need Node 20 and npm", pytrace=False)
    INSTALL.mkdir(exist_ok=True)
    stamp = INSTALL / ".installed"
    digest = hashlib.sha256(b"".join((SOURCE / f).read_bytes() for f in FILES)).hexdigest()
    for f in FILES:
        shutil.copyfile(SOURCE / f, INSTALL / f)
    if stamp.exists() and stamp.read_text() == digest and (INSTALL / "node_modules").is_dir():
        return INSTALL
    stamp.unlink(missing_ok=True)
    env = dict(os.environ)
    # better-sqlite3 compiles against Node's headers; only the package registries are reachable here, so
    # point node-gyp at the headers installed with Node instead of letting it download them.
    headers = Path(shutil.which("node") or "/usr/bin/node").resolve().parent.parent
    if (headers / "include" / "node" / "node.h").exists():
        env.setdefault("npm_config_nodedir", str(headers))
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=INSTALL,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"npm ci of the pinned PDS failed (is the npm registry reachable?):\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    stamp.write_text(digest)
    return INSTALL


@dataclass
class Pds:
    proc: Proc
    port: int
    plc_port: int
    admin_password: str
    data_dir: Path
    blobstore: Path
    env_file: Path  # the PDS's env file, as the installer's /pds/pds.env (its JWT secret among them)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def jwt_secret(self) -> str:
        """PDS_JWT_SECRET (tests sign expired or refresh tokens with it, as only the PDS could)."""
        return read_env_file(self.env_file)["PDS_JWT_SECRET"]

    @property
    def public_url(self) -> str:
        """What the PDS calls itself (DID documents, OAuth issuer, DPoP ``htu``)."""
        return f"http://localhost:{self.port}"

    def blob_files(self) -> dict[Path, str]:
        """Every file in the blob store, temporary uploads and quarantine included: path → sha256."""
        return {
            p: hashlib.sha256(p.read_bytes()).hexdigest() for p in self.blobstore.rglob("*") if p.is_file()
        }

    def stored_since(self, before: dict[Path, str]) -> dict[Path, str]:
        """Files the blob store gained since ``before``, except empty ones: the PDS keeps a 0-byte
        temporary blob for each empty-body probe the gate sends before revealing a block verdict."""
        return {p: h for p, h in self.blob_files().items() if p not in before and h != EMPTY_SHA256}


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def start(workdir: Path) -> Pds:
    root = install()
    data_dir = workdir / "pds-data"
    data_dir.mkdir()
    proc = Proc(
        "pds",
        ["node", str(root / "run-pds.js"), str(data_dir)],
        workdir / "pds.log",
        cwd=root,
        stdin_pipe=True,
        stdout_pipe=True,
    )
    assert proc.popen.stdout is not None
    line = proc.popen.stdout.readline()  # the ready line; EOF if it died
    if not line:
        proc.popen.wait(10)
        raise proc.fail("exited before it was ready")
    info = json.loads(line)
    pds = Pds(
        proc=proc,
        port=info["pds_port"],
        plc_port=info["plc_port"],
        admin_password=info["admin_password"],
        data_dir=Path(info["data_dir"]),
        blobstore=Path(info["blobstore"]),
        env_file=Path(info["env_file"]),
    )
    proc.wait_http(f"{pds.url}/xrpc/_health", timeout=30)
    return pds
