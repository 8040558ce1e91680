"""``upload-gate scan`` against the real PDS: blobs stored around the gate (posted straight to the PDS) in
several repos, one of them deactivated, are found, judged and recorded with the post that holds them; the
banked one is queued for review with evidence that decrypts to the original bytes, withheld from getBlob
and taken down on the PDS (under the daily cap: past it, recorded as capped and left up); a held one is
withheld by the gate while the PDS still has it. A second scan reads nothing; a scan killed midway resumes
without reading a finished repo again. Bad input — a blob the PDS cannot serve, a repo deleted mid-scan,
a changed file, a blob over the limit — is recorded with its reason (``scan problems``), counted and
summarised. A picture the gate forwarded clean is re-judged by the gate itself once a bank file gains its
hash. The scan talks to the PDS through a recording front that counts every getBlob it forwards.
"""

from __future__ import annotations

import base64
import hashlib
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
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import gate_server, images
from tests.e2e.endpoints import Endpoint, User, new_user
from tests.e2e.gate_server import POLICY, REPO, Gate
from tests.e2e.pds_server import Pds
from tests.e2e.procs import LOOPBACK
from tests.support.boot import gate_command
from tests.support.cids import cid_of

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
RELOAD_INTERVAL = 2.0  # GATE_RELOAD_INTERVAL: how often the gate looks at its bank files


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
        extra_env={"GATE_WITHHELD_REFRESH_INTERVAL": "0.5", "GATE_RELOAD_INTERVAL": str(RELOAD_INTERVAL)},
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
    user, cids, _ = user_posting(pds.url, pictures, users)
    return user, cids


def user_posting(url: str, pictures: list[bytes], users: list[User]) -> tuple[User, list[str], list[str]]:
    """An account made through ``url``, posting each of ``pictures`` there: it, their CIDs, the posts' URIs."""
    user = new_user(Endpoint("pds", url, True))
    users.append(user)
    uris = [user.post_image(picture, text=f"stored {i}").uri for i, picture in enumerate(pictures)]
    return user, [cid_of(p) for p in pictures], uris


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
    alice, alice_cids, alice_posts = user_posting(pds.url, [images.png(142), banned], users)
    bob, bob_cids, bob_posts = user_posting(pds.url, [images.png(143), held, images.png(144)], users)
    carol, carol_cids, carol_posts = user_posting(pds.url, [images.png(145)], users)
    carol.client.com.atproto.server.deactivate_account()
    ours = {alice.did: alice_cids, bob.did: bob_cids, carol.did: carol_cids}
    post_of = dict(
        zip(alice_cids + bob_cids + carol_cids, alice_posts + bob_posts + carol_posts, strict=True)
    )
    banned_cid, held_cid = cid_of(banned), cid_of(held)

    metrics_file = tmp_path / "upload_gate_scan.prom"
    summary = scan(scan_gate, front, "--metrics-file", str(metrics_file))
    assert summary["problems"] == {}, summary
    assert summary["repos"]["total"] >= 3 and summary["repos"]["failed"] == 0
    assert summary["repos"]["without_records"] == 0
    # The same counts for node_exporter's textfile collector, the scan marked finished.
    samples = {
        (s.name, tuple(sorted(s.labels.values()))): s.value
        for family in text_string_to_metric_families(metrics_file.read_text())
        for s in family.samples
    }
    assert samples[("upload_gate_scan_repos", ("read",))] == summary["repos"]["read"]
    assert samples[("upload_gate_scan_blobs", ("read",))] == summary["blobs"]["read"]
    for verdict, n in summary["verdicts"].items():
        assert samples[("upload_gate_scan_verdicts", (verdict,))] == n
    assert samples[("upload_gate_scan_actions", ("done", "takedown"))] == summary["actions"]["takedown:done"]
    assert samples[("upload_gate_scan_finished_timestamp_seconds", ())] > 0
    for did, cids in ours.items():
        for cid in cids:
            assert front.blobs[(did, cid)] == 1, (did, cid)  # carol's too: deactivated, read as admin
            [row] = backfill_rows(scan_gate, cid)
            assert row["did"] == did and row["verified_how"] == "repo"
            assert row["records"] == [post_of[cid]]  # the post that holds it (carol's: read as admin)
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

    # --rescan reads and judges a repo's blobs again, recorded or not.
    mid = front.reads()
    rescanned = scan(scan_gate, front, "--rescan", "--did", bob.did)
    assert front.reads() - mid == Counter({(bob.did, cid): 1 for cid in bob_cids})
    assert rescanned["blobs"]["read"] == 3 and rescanned["repos"]["read"] == 1
    assert len(backfill_rows(scan_gate, bob_cids[0])) == 2


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


def admin_auth(pds: Pds) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{pds.admin_password}".encode()).decode()}


def takedowns_done(gate: Gate) -> int:
    """Blob takedowns this gate's scans and retro-hunts carried out (all today: the test's day)."""
    listed = gate_command("decisions", "--json", "--limit", "10000", env=gate.env)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    return sum(1 for r in rows for a in r["actions"] if (a["action"], a["result"]) == ("takedown", "done"))


def test_takedowns_stop_at_the_daily_cap(scan_gate: Gate, pds: Pds, front: Front, users: list[User]) -> None:
    """Two banked pictures (near duplicates: the PDQ rule) and one takedown left today: one is taken down,
    the other recorded as capped, still reviewed and withheld by the gate, and left up on the PDS."""
    owner, cids = user_with(pds, [images.near_duplicate(140, q) for q in (80, 90)], users)
    env = {**scan_gate.env, "GATE_TAKEDOWN_DAILY_CAP": str(takedowns_done(scan_gate) + 1)}
    result = gate_command(
        "scan", "--pds", front.url, "--json", "--progress", "none", "--did", owner.did, env=env
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["actions"] == {
        "withhold:done": 2,
        "review:done": 2,
        "takedown:done": 1,
        "takedown:capped": 1,
    }
    taken = {}
    for cid in cids:
        [row] = backfill_rows(scan_gate, cid)
        assert (row["verdict"], row["rule"]) == ("reject", "banned-pdq")
        [*_, takedown] = row["actions"]
        taken[cid] = takedown["result"]
        if takedown["result"] == "capped":
            assert "daily takedown cap (" in takedown["detail"]
    assert sorted(taken.values()) == ["capped", "done"]
    for cid, result_of in taken.items():
        status = pds_get_blob(pds, owner.did, cid).status_code
        assert status == (400 if result_of == "done" else 200), (cid, result_of)


def test_bad_input_is_recorded_counted_and_summarised(
    scan_gate: Gate, pds: Pds, front: Front, users: list[User]
) -> None:
    """Through getBlob: a blob whose file the PDS lost (it answers "Blob not found"), one changed on disk
    (the PDS serves other bytes than its CID names), one over the size limit, and a repo deleted while the
    scan is under way — each recorded with its reason, counted and summarised; the clean ones judged."""
    big = _noisy_png(300_000)
    clean = [images.png(190 + i) for i in range(7)]
    owner, cids = user_with(pds, [*clean, images.png(197), images.png(198), big], users)
    *clean_cids, lost, changed, too_big = cids
    gone, [gone_cid] = user_with(pds, [images.png(199)], users)  # listed after owner (creation order)
    (pds.blobstore / owner.did / lost).unlink()
    (pds.blobstore / owner.did / changed).write_bytes(images.png(200))
    env = {**scan_gate.env, "GATE_MAX_UPLOAD_BYTES": str(len(big) - 1)}
    args = ("--pds", front.url, "--did", owner.did, "--did", gone.did, "--progress", "none")
    before = front.reads()

    # One blob at a time, two a second: owner's ten blobs keep the scan busy for seconds, while gone's
    # repo (listed already) is deleted before the scan gets to it.
    proc = subprocess.Popen(
        [*SCAN, *args, "--json", "--concurrency", "1", "--blobs-per-second", "2"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not [key for key in front.reads() - before if key[0] == owner.did]:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    deleted = httpx.post(
        f"{pds.url}/xrpc/com.atproto.admin.deleteAccount", json={"did": gone.did}, headers=admin_auth(pds)
    )
    assert deleted.status_code == 200, deleted.text
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["problems"] == {"corrupt": 1, "repo_unavailable": 1, "too_large": 1, "unavailable": 1}
    assert (summary["repos"]["total"], summary["repos"]["failed"]) == (2, 1)
    assert summary["blobs"]["read"] == 7 and summary["verdicts"] == {"forward": 7}
    for cid in clean_cids:
        [row] = backfill_rows(scan_gate, cid)
        assert row["verdict"] == "forward"
    for cid in (lost, changed, too_big, gone_cid):
        assert backfill_rows(scan_gate, cid) == []
    assert (gone.did, gone_cid) not in front.blobs

    # Recorded with what was said: `upload-gate scan problems`.
    listed = gate_command("scan", "problems", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    problems = json.loads(listed.stdout)
    blobs = {b["cid"]: b for b in problems["blobs"] if b["did"] == owner.did}
    assert {cid: (b["problem"], b["retried"]) for cid, b in blobs.items()} == {
        lost: ("unavailable", "yes"),
        changed: ("corrupt", "no"),
        too_big: ("too_large", "no"),
    }
    assert "Blob not found" in blobs[lost]["detail"]
    assert blobs[changed]["detail"] == "the bytes do not match their CID"
    [repo] = [r for r in problems["repos"] if r["did"] == gone.did]
    assert "RepoNotFound" in repo["error"]

    # The next scan tries again only the blob that may come back, and says so in its summary.
    mid = front.reads()
    again = gate_command("scan", *args, env=env)
    assert again.returncode == 0, again.stderr
    assert front.reads() - mid == Counter({(owner.did, lost): 1})
    assert "problems: unavailable 1" in again.stdout, again.stdout


def test_a_bank_addition_rejudges_a_forwarded_picture(
    scan_gate: Gate, pds: Pds, users: list[User], tmp_path: Path
) -> None:
    """Forwarded clean through the gate; then its SHA-256 is added to a bank file. The gate itself (no
    command run) re-judges the stored decision within one reload interval and carries out [scan]: a retro
    decision naming the original, evidence fetched from the PDS that decrypts to the picture, withheld by
    the gate and taken down on the PDS."""
    picture = images.png(210)
    user, [cid], _ = user_posting(scan_gate.url, [picture], users)
    [original] = [r for r in scan_gate.decisions(cid) if r["source"] == "upload"]
    assert (original["verdict"], original["did"]) == ("forward", user.did)
    assert pds_get_blob(pds, user.did, cid).content == picture

    bank = Path(scan_gate.env["GATE_BANKS_DIR"]) / "banned.csv"
    added_at = datetime.now(UTC)
    with bank.open("a") as f:
        f.write(f"sha256,{hashlib.sha256(picture).hexdigest()},reported after it was posted\n")
    deadline = time.monotonic() + 30
    while not (retro := [r for r in scan_gate.decisions(cid) if r["source"] == "retro"]):
        assert time.monotonic() < deadline, "no retro decision"
        time.sleep(0.2)
    [row] = retro
    assert (row["origin"], row["verdict"], row["rule"], row["did"]) == (
        original["id"],
        "reject",
        "banned-exact",
        user.did,
    )
    line = len(bank.read_text().splitlines())
    assert f"retro: banned banned.csv:{line} added" in row["notes"]
    # Decided within one reload interval of the change (plus the reload's own work).
    assert (datetime.fromisoformat(row["time"]) - added_at).total_seconds() < RELOAD_INTERVAL + 1.5
    assert [(a["action"], a["result"]) for a in row["actions"]] == [
        ("withhold", "done"),
        ("review", "done"),
        ("takedown", "done"),
    ]
    out = tmp_path / "evidence"
    exported = gate_command(
        "evidence", "export", row["id"], "--out", str(out), "--actor", "e2e", env=scan_gate.env
    )
    assert exported.returncode == 0, exported.stderr
    [payload] = [p for p in out.iterdir() if p.suffix != ".json"]
    assert payload.read_bytes() == picture
    r = pds_get_blob(pds, user.did, cid)
    assert (r.status_code, r.json()["message"]) == (400, "Blob not found"), r.text
