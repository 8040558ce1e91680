"""``upload-gate scan`` against the real PDS: blobs stored around the gate (posted straight to the PDS) in
several repos, one of them deactivated, are found, judged and recorded; the banked one is queued for review
with evidence that decrypts to the original bytes, withheld from getBlob and taken down on the PDS; a
held one is withheld by the gate while the PDS still has it. A second scan reads nothing; a scan killed
midway resumes without reading a finished repo again. The scan talks to the PDS through a recording front
that counts every getBlob it forwards.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from tests.e2e import gate_server, images
from tests.e2e.endpoints import Endpoint, User, new_user
from tests.e2e.gate_server import POLICY, REPO, Gate, gate_command
from tests.e2e.pds_server import Pds
from tests.e2e.procs import LOOPBACK

pytestmark = [
    pytest.mark.e2e,
    # The atproto SDK's upload passes bytes as httpx's data=.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"),
]

SCAN_POLICY = (
    POLICY
    + """
[scan]
reject = ["withhold", "review", "takedown"]
quarantine = ["withhold", "review"]
"""
)
GET_BLOB = "/xrpc/com.atproto.sync.getBlob"
SCAN = (sys.executable, "-m", "gate", "scan")


@dataclass
class Front:
    """A recording reverse proxy in front of the PDS: what the scan asked for, getBlob by (did, cid)."""

    server: ThreadingHTTPServer
    blobs: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def reads(self) -> Counter[tuple[str, str]]:
        return Counter(self.blobs)


def recording_front(upstream: str) -> Front:
    front: Front

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == GET_BLOB:
                q = parse_qs(parts.query)
                front.blobs[(q["did"][0], q["cid"][0])] += 1
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization",)}
            r = httpx.get(upstream + self.path, headers=headers, timeout=60)
            self.send_response(r.status_code)
            for k in ("content-type", "content-length"):
                if k in r.headers:
                    self.send_header(k, r.headers[k])
            self.end_headers()
            self.wfile.write(r.content)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    front = Front(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return front


@pytest.fixture(scope="module")
def scan_gate(e2e_dir: Path, pds: Pds) -> Iterator[Gate]:
    folder = e2e_dir / "scan-banks"
    folder.mkdir()
    (folder / "banned.png").write_bytes(images.png(140))
    (folder / "held.png").write_bytes(images.png(141))
    server = gate_server.start(
        e2e_dir,
        pds.url,
        {"banned": [folder / "banned.png"], "held": [folder / "held.png"]},
        pds_admin_password=pds.admin_password,
        name="scan-gate",
        extra_env={"GATE_WITHHELD_REFRESH_INTERVAL": "0.5"},
        policy_text=SCAN_POLICY,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def front(pds: Pds) -> Iterator[Front]:
    f = recording_front(pds.url)
    try:
        yield f
    finally:
        f.server.shutdown()
        f.server.server_close()


@pytest.fixture
def users() -> Iterator[list[User]]:
    made: list[User] = []
    yield made
    for user in made:
        user.client.request.close()


def user_with(pds: Pds, pictures: list[bytes], users: list[User]) -> tuple[User, list[str]]:
    """An account made on the PDS itself, posting ``pictures`` there: the gate never sees them."""
    user = new_user(Endpoint("pds", pds.url, True))
    users.append(user)
    for i, picture in enumerate(pictures):
        user.post_image(picture, text=f"stored {i}")
    return user, [images.cid_of(p) for p in pictures]


def scan(gate: Gate, front: Front, *args: str) -> dict[str, Any]:
    result = gate_command("scan", "--pds", front.url, "--json", "--progress", "none", *args, env=gate.env)
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def backfill_rows(gate: Gate, cid: str) -> list[dict[str, Any]]:
    return [r for r in gate.decisions(cid) if r["source"] == "backfill"]


def pds_get_blob(pds: Pds, did: str, cid: str) -> httpx.Response:
    return httpx.get(f"{pds.url}{GET_BLOB}", params={"did": did, "cid": cid}, timeout=30)


def test_scan_judges_acts_and_reads_nothing_twice(
    scan_gate: Gate, pds: Pds, front: Front, users: list[User], tmp_path: Path
) -> None:
    banned, held = images.png(140), images.png(141)
    alice, alice_cids = user_with(pds, [images.png(142), banned], users)
    bob, bob_cids = user_with(pds, [images.png(143), held, images.png(144)], users)
    carol, carol_cids = user_with(pds, [images.png(145)], users)
    carol.client.com.atproto.server.deactivate_account()
    ours = {alice.did: alice_cids, bob.did: bob_cids, carol.did: carol_cids}
    banned_cid, held_cid = images.cid_of(banned), images.cid_of(held)

    summary = scan(scan_gate, front)
    assert summary["problems"] == {}, summary
    assert summary["repos"]["total"] >= 3 and summary["repos"]["failed"] == 0
    for did, cids in ours.items():
        for cid in cids:
            assert front.blobs[(did, cid)] == 1, (did, cid)  # carol's too: deactivated, read as admin
            [row] = backfill_rows(scan_gate, cid)
            assert row["did"] == did and row["verified_how"] == "repo"
            expected = {banned_cid: "reject", held_cid: "quarantine"}.get(cid, "forward")
            assert row["verdict"] == expected, row

    [row] = backfill_rows(scan_gate, banned_cid)
    assert row["rule"] == "banned-exact"
    assert [(a["action"], a["result"]) for a in row["actions"]] == [
        ("withhold", "done"),
        ("review", "done"),
        ("takedown", "done"),
    ]
    [held_row] = backfill_rows(scan_gate, held_cid)
    assert [(a["action"], a["result"]) for a in held_row["actions"]] == [
        ("withhold", "done"),
        ("review", "done"),
    ]

    # Evidence, as for a held upload: it decrypts to the bytes the PDS stored.
    for item, original in ((row, banned), (held_row, held)):
        out = tmp_path / item["id"]
        exported = gate_command(
            "evidence", "export", item["id"], "--out", str(out), "--actor", "e2e", env=scan_gate.env
        )
        assert exported.returncode == 0, exported.stderr
        [payload] = [p for p in out.iterdir() if p.suffix != ".json"]
        assert payload.read_bytes() == original

    # Taken down on the PDS: it refuses the blob to everyone; the held one it still serves, the gate not.
    r = pds_get_blob(pds, alice.did, banned_cid)
    assert (r.status_code, r.json()["message"]) == (400, "Blob not found"), r.text
    assert pds_get_blob(pds, bob.did, held_cid).content == held
    assert pds_get_blob(pds, alice.did, alice_cids[0]).status_code == 200
    deadline = time.monotonic() + 15
    while True:
        r = httpx.get(f"{scan_gate.url}{GET_BLOB}", params={"did": bob.did, "cid": held_cid}, timeout=30)
        if r.status_code == 400 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (r.status_code, r.json()["error"]) == (400, "InvalidRequest"), r.text
    clean = httpx.get(f"{scan_gate.url}{GET_BLOB}", params={"did": bob.did, "cid": bob_cids[0]}, timeout=30)
    assert clean.status_code == 200

    # A second scan reads nothing: every repo is finished at the rev it still has.
    before = front.reads()
    again = scan(scan_gate, front)
    assert front.reads() == before
    assert again["blobs"]["read"] == 0 and again["repos"]["unchanged"] == again["repos"]["total"]
    for cid in (banned_cid, held_cid):
        assert len(backfill_rows(scan_gate, cid)) == 1


def test_a_killed_scan_resumes_without_rereading_finished_repos(
    scan_gate: Gate, pds: Pds, front: Front, users: list[User], tmp_path: Path
) -> None:
    scan(scan_gate, front)  # whatever the PDS holds so far is finished
    made = [user_with(pds, [images.png(seed + i) for i in range(3)], users) for seed in (150, 160, 170)]
    ours = {user.did: cids for user, cids in made}
    first = made[0][0].did
    before = front.reads()

    # Two blobs a second, one at a time; killed (the whole process group, SIGKILL) once the first new
    # repo is finished and the next one under way.
    log = (tmp_path / "killed-scan.log").open("wb")
    proc = subprocess.Popen(
        [*SCAN, "--pds", front.url, "--concurrency", "1", "--blobs-per-second", "2", "--progress", "none"],
        cwd=REPO,
        env=scan_gate.env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while sum((front.reads() - before).values()) < 5:
            assert proc.poll() is None, (tmp_path / "killed-scan.log").read_text()
            assert time.monotonic() < deadline, "the scan did not get going"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        log.close()
    killed_run = front.reads() - before
    assert set(cid for did, cid in killed_run if did == first) == set(ours[first])

    mid = front.reads()
    summary = scan(scan_gate, front)
    resumed = front.reads() - mid
    assert not [key for key in resumed if key[0] == first], resumed  # the finished repo: not read again
    assert summary["problems"] == {}
    for did, cids in ours.items():
        for cid in cids:
            assert front.blobs[(did, cid)] >= 1
            assert len(backfill_rows(scan_gate, cid)) == 1, (did, cid)  # recorded once, whatever was re-read
    # At most the blob in flight when it was killed (and one lingering batch) is read twice.
    assert sum((killed_run + resumed).values()) <= 9 + 2


def test_scan_from_the_disk_blob_store_records_bad_blobs(
    scan_gate: Gate, pds: Pds, front: Front, users: list[User]
) -> None:
    """``--blobstore``: the bytes come from the PDS's own files (no getBlob), checked against their CID;
    a file changed on disk and one over the size limit are recorded with their reason and counted, once."""
    big = _noisy_png(300_000)
    owner, (good, changed, too_big) = user_with(pds, [images.png(180), images.png(183), big], users)
    (pds.blobstore / owner.did / changed).write_bytes(images.png(184))  # not the bytes its CID names
    env = {**scan_gate.env, "GATE_MAX_UPLOAD_BYTES": str(len(big) - 1)}
    args = (
        "--pds",
        front.url,
        "--json",
        "--progress",
        "none",
        "--blobstore",
        str(pds.blobstore),
        "--did",
        owner.did,
    )
    result = gate_command("scan", *args, env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["problems"] == {"corrupt": 1, "too_large": 1}, summary
    assert summary["blobs"]["read"] == 1
    assert not [key for key in front.blobs if key[0] == owner.did]  # nothing through getBlob
    [row] = backfill_rows(scan_gate, good)
    assert (row["did"], row["verdict"]) == (owner.did, "forward")
    assert backfill_rows(scan_gate, changed) == [] and backfill_rows(scan_gate, too_big) == []
    # Recorded: the next scan neither reads nor counts them again.
    again = json.loads(gate_command("scan", *args, env=env).stdout)
    assert again["problems"] == {} and again["blobs"]["read"] == 0


def _noisy_png(size: int) -> bytes:
    """A PNG of random pixels, about ``size`` bytes: large (PNG cannot compress noise), yet an image."""
    side = int((size // 3) ** 0.5)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(7).randbytes(side * side * 3)).save(out, "PNG")
    return out.getvalue()
