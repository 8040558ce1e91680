"""``upload-gate watch`` on the real PDS's firehose: posts made on the PDS directly (around the gate) — a
banked image, a clean one, a banked avatar, a video — are each judged from the firehose with the right
verdict and record URI, the banked ones are labelled (read back with queryLabels from ``serve``, and by a
Node peer that checks every signature with @atproto/crypto) and the avatar waits in the review queue —
API and page — with its record and author; killed and restarted, the watcher resumes from its cursor:
what was posted meanwhile is judged, nothing is fetched twice (every getBlob is counted on its way to the
PDS)."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from atproto import models

from tests.e2e import gate_server, pds_server
from tests.e2e.endpoints import Endpoint, Images, User, new_user
from tests.e2e.gate_server import POLICY
from tests.e2e.images import near_duplicate, png
from tests.e2e.pds_server import Pds
from tests.e2e.procs import LOOPBACK, Proc, free_port
from tests.support.boot import gate_command
from tests.support.cids import cid_of

pytestmark = [
    pytest.mark.e2e,
    # The atproto SDK uploads blobs with httpx's data=bytes, which httpx 0.28 deprecates.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"),
]
LABELER_DID = "did:plc:e2efirehoselabeler000000"
DID_KEYS: dict[str, str] = {}  # the labeler's public key as did:key, as `labeler init` printed it
PEER = Path(__file__).parent / "labels_peer.js"
FIREHOSE_POLICY = (
    POLICY
    + """
[firehose]
max_lag_seconds = 600
on_lag = "pause"

[[firehose.labels]]
rule = "banned-exact"
values = ["hash-match"]
account = true

[[firehose.labels]]
rule = "banned-pdq"
values = ["hash-match"]
account = true

[[firehose.labels]]
rule = "held"
values = ["hash-review"]
"""
)
# A small MP4 (ftyp + mdat): the PDS sniffs it as video/mp4; the gate cannot perceptually hash video.
VIDEO = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x10mdat" + b"\x00" * 8


class BlobCounter:
    """In front of the PDS: counts every getBlob by CID, forwards everything unchanged."""

    def __init__(self, pds_url: str) -> None:
        self.pds_url = pds_url
        self.fetches: collections.Counter[str] = collections.Counter()
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def _forward(self, request: web.Request) -> web.Response:
        if request.path == "/xrpc/com.atproto.sync.getBlob":
            self.fetches[request.query.get("cid", "")] += 1
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.pds_url + request.path_qs,
                data=await request.read(),
                allow_redirects=False,
            ) as upstream,
        ):
            body = await upstream.read()
            headers = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type",)}
            return web.Response(status=upstream.status, body=body, headers=headers)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, LOOPBACK, self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def counter(pds: Pds) -> Iterator[BlobCounter]:
    c = BlobCounter(pds.url)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def labeler(e2e_dir: Path, pds: Pds, pictures: Images) -> Iterator[gate_server.Gate]:
    """``serve`` holding the labeler key: it serves the labels the watcher writes."""
    key_file = e2e_dir / "firehose-labeler" / "key.json"
    made = gate_command("labeler", "init", str(key_file), "--endpoint", "https://labeler.example")
    assert made.returncode == 0, made.stderr
    DID_KEYS[LABELER_DID] = made.stdout.split("labeler key: ", 1)[1].split()[0]
    gate = gate_server.start(
        e2e_dir,
        pds.url,
        {"banned": [pictures.folder / "banned.png"], "held": [pictures.folder / "held.png"]},
        name="firehose-gate",
        extra_env={"GATE_LABELER_DID": LABELER_DID, "GATE_LABELER_KEY_FILE": str(key_file)},
    )
    yield gate
    gate.stop()


class Watch:
    """``upload-gate watch`` as an operator runs it, on the serving gate's settings and Postgres."""

    def __init__(
        self,
        gate: gate_server.Gate,
        pds: Pds,
        counter: BlobCounter,
        workdir: Path,
        policy_text: str = FIREHOSE_POLICY,
        env: dict[str, str] | None = None,
    ) -> None:
        policy = workdir / f"firehose-policy-{abs(hash(policy_text))}.toml"
        policy.write_text(policy_text)
        self.metrics_port = free_port()
        self.env = {
            **gate.env,
            "GATE_POLICY": str(policy),
            "GATE_UPSTREAM": counter.url,  # the gate's PDS, reached through the counter
            "GATE_PDS_ENV_FILE": str(pds.env_file),  # its public URL, as the DID documents name it
            "GATE_PLC_URL": f"http://{LOOPBACK}:{pds.plc_port}",
            "GATE_WATCH_METRICS_LISTEN": f"{LOOPBACK}:{self.metrics_port}",
            "GATE_LABELER_DID": LABELER_DID,
            **(env or {}),
        }
        self.env.pop("GATE_LABELER_KEY_FILE", None)  # the watcher needs no key: serve signs
        self.firehose = f"ws://{LOOPBACK}:{pds.port}"
        self.log = workdir / "watch.log"
        self.proc: Proc | None = None

    def start(self) -> None:
        self.proc = Proc(
            "watch",
            [sys.executable, "-m", "gate", "watch", "--firehose", self.firehose],
            self.log,
            env=self.env,
            cwd=gate_server.REPO,
        )
        self.proc.wait_http(f"http://{LOOPBACK}:{self.metrics_port}/readyz", timeout=90)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.popen.pid, signal.SIGKILL)  # no shutdown: what it saved is all it keeps
        self.proc.popen.wait(30)
        self.proc.stop()  # (closes its log)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=30)

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://{LOOPBACK}:{self.metrics_port}/metrics", timeout=5).text
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

    def decisions(self) -> list[dict[str, Any]]:
        result = gate_command("decisions", "--source", "firehose", "--json", "--limit", "1000", env=self.env)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def upload(user: User, body: bytes) -> models.BlobRef:
    """The PDS sniffs the type itself (video/mp4, image/png) and says it in the blob reference."""
    return user.client.upload_blob(body).blob


def post_with_video(user: User, video: models.BlobRef) -> str:
    embed = models.AppBskyEmbedVideo.Main(video=video, alt="a clip")
    return str(user.client.send_post(text="a clip", embed=embed, profile_identify=user.did).uri)


def set_avatar(user: User, avatar: models.BlobRef) -> str:
    record = models.AppBskyActorProfile.Record(display_name="watched", avatar=avatar)
    made = user.client.com.atproto.repo.put_record(
        {"repo": user.did, "collection": "app.bsky.actor.profile", "rkey": "self", "record": record}
    )
    return str(made.uri)


def query_labels(gate: gate_server.Gate, uri: str) -> set[tuple[str, bool]]:
    r = httpx.get(f"{gate.url}/xrpc/com.atproto.label.queryLabels", params={"uriPatterns": uri}, timeout=10)
    assert r.status_code == 200, r.text
    return {(x["val"], bool(x.get("neg", False))) for x in r.json()["labels"]}


def peer_read(gate: gate_server.Gate) -> dict[str, Any]:
    """queryLabels with @atproto/api and subscribeLabels from cursor 0 with a websocket and
    @atproto/common's CBOR, every signature checked with @atproto/crypto (tests/e2e/labels_peer.js)."""
    count = len(
        httpx.get(f"{gate.url}/xrpc/com.atproto.label.queryLabels?uriPatterns=*", timeout=10).json()["labels"]
    )
    node_env = {**os.environ, "NODE_PATH": str(pds_server.install() / "node_modules")}
    done = subprocess.run(
        ["node", str(PEER), gate.url, DID_KEYS[LABELER_DID], str(count), "0"],
        capture_output=True,
        text=True,
        env=node_env,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    read: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])  # the peer's last line: what it read
    return read


def test_watch_judges_labels_and_resumes(
    e2e_dir: Path, pds: Pds, pictures: Images, counter: BlobCounter, labeler: gate_server.Gate
) -> None:
    watch = Watch(labeler, pds, counter, e2e_dir)
    watch.start()
    try:
        # Users are made on the PDS itself: nothing here passes through the gate's upload path.
        user = new_user(Endpoint("pds", pds.url, True))
        wait_for(
            "the watcher to read the firehose", lambda: watch.metric("upload_gate_firehose_events_total") > 0
        )
        clean_image = png(40)
        banned_uri = str(user.post_image(pictures.banned, "banked").uri)
        clean_uri = str(user.post_image(clean_image, "clean").uri)
        video_uri = post_with_video(user, upload(user, VIDEO))
        profile_uri = set_avatar(user, upload(user, pictures.held))
        cids = {cid_of(pictures.banned), cid_of(clean_image), cid_of(VIDEO), cid_of(pictures.held)}
        wait_for("four firehose decisions", lambda: len(watch.decisions()) >= 4)

        by_uri = {row["record_uri"]: row for row in watch.decisions()}
        assert set(by_uri) == {banned_uri, clean_uri, video_uri, profile_uri}
        assert {by_uri[u]["cid"] for u in by_uri} == cids
        assert by_uri[banned_uri]["verdict"] == "reject" and by_uri[banned_uri]["rule"].startswith("banned")
        assert by_uri[clean_uri]["verdict"] == "forward" and by_uri[clean_uri]["reason"] == "no_match"
        assert by_uri[video_uri]["verdict"] == "forward" and by_uri[video_uri]["reason"] == "unscannable"
        assert by_uri[profile_uri]["verdict"] == "quarantine" and by_uri[profile_uri]["rule"] == "held"
        assert all(row["did"] == user.did and row["source"] == "firehose" for row in by_uri.values())

        # Labels, signed and served by `serve`: the record and (as the policy says) the account.
        wait_for("the labels", lambda: ("hash-match", False) in query_labels(labeler, banned_uri), 15)
        assert query_labels(labeler, user.did) == {("hash-match", False)}
        assert query_labels(labeler, profile_uri) == {("hash-review", False)}
        assert query_labels(labeler, clean_uri) == set() and query_labels(labeler, video_uri) == set()

        # The avatar waits for review, with its record and author.
        items = httpx.get(
            f"{labeler.metrics_url}/admin/api/items",
            headers={"Authorization": f"Bearer {labeler.admin_token}"},
            timeout=10,
        ).json()["items"]
        (item,) = [i for i in items if i["cid"] == cid_of(pictures.held)]
        assert (item["record_uri"], item["verified_did"], item["verified_how"]) == (
            profile_uri,
            user.did,
            "firehose",
        )
        # And so does the review page a moderator reads: the queue and the item.
        for path in ("/review", f"/review/item/{item['decision_id']}"):
            page = httpx.get(
                labeler.metrics_url + path,
                headers={"Authorization": f"Bearer {labeler.admin_token}"},
                timeout=10,
            )
            assert page.status_code == 200, page.text
            assert f"<code>{user.did}</code> (verified: firehose)" in page.text
            assert f"in record <code>{profile_uri}</code>" in page.text

        assert {cid: counter.fetches[cid] for cid in cids} == dict.fromkeys(cids, 1)
        time.sleep(2.5)  # the cursor is saved every second
        watch.kill()

        # While it is down: a new picture, and the banked one posted again (same CID, new record).
        later = png(41)
        later_uri = str(user.post_image(later, "while down").uri)
        again_uri = str(user.post_image(pictures.banned, "again").uri)
        watch.start()
        wait_for(
            "the picture posted while down", lambda: later_uri in {r["record_uri"] for r in watch.decisions()}
        )
        wait_for("the re-post's label", lambda: ("hash-match", False) in query_labels(labeler, again_uri), 30)
        decided = [r for r in watch.decisions() if r["record_uri"] == later_uri]
        assert len(decided) == 1 and decided[0]["verdict"] == "forward"
        # Nothing fetched twice: not the blobs judged before the kill, not the banked one seen again.
        assert {cid: counter.fetches[cid] for cid in (*cids, cid_of(later))} == dict.fromkeys(
            (*cids, cid_of(later)), 1
        )
        # Each record judged once: no decision repeated after the restart.
        uris = [r["record_uri"] for r in watch.decisions() if r["record_uri"] != again_uri]
        assert len(uris) == len(set(uris)) == 5

        # Every label the watcher asked for, as a Node peer reads and verifies it with @atproto/crypto.
        seen = peer_read(labeler)
        assert {(x["uri"], x["val"]) for x in seen["query"]} == {
            (banned_uri, "hash-match"),
            (user.did, "hash-match"),
            (profile_uri, "hash-review"),
            (again_uri, "hash-match"),
        }
        for label in (*seen["query"], *seen["stream"]):
            assert label["valid"] is True and label["src"] == LABELER_DID, label
        assert {(x["uri"], x["val"]) for x in seen["stream"]} == {(x["uri"], x["val"]) for x in seen["query"]}
    finally:
        watch.stop()
        if "user" in locals():
            user.client.request.close()


def test_watch_takes_down_what_a_rule_rejects_on_its_own_pds(
    e2e_dir: Path, pds: Pds, counter: BlobCounter, labeler: gate_server.Gate
) -> None:
    """``[firehose] takedown = true``: a banked picture posted around the gate is taken down on the PDS
    (getBlob refuses it) in every repo that posts it — the second post of the same CID is not fetched
    again, yet is taken down in its own repo — while the clean picture and the held one (a reviewer's
    decision) stay served; the decision row says what was done. Its own pictures and banks, and its
    accounts deleted at the end: the PDS is shared with the other end-to-end tests (scans list it all)."""
    folder = e2e_dir / "firehose-takedown"
    folder.mkdir()
    banned, held, clean = png(60), png(61), png(62)
    near = near_duplicate(60)
    (folder / "banned.png").write_bytes(banned)
    (folder / "held.png").write_bytes(held)
    banks = folder / "banks"
    banks.mkdir()
    for bank in ("banned", "held"):
        lines = gate_server.bank_rows(folder / f"{bank}.png")
        (banks / f"{bank}.csv").write_text("signal_type,hash,label\n" + "\n".join(lines) + "\n")
    policy = FIREHOSE_POLICY.replace('on_lag = "pause"', 'on_lag = "pause"\ntakedown = true', 1)
    assert "takedown = true" in policy
    env = {
        "GATE_PDS_ADMIN_PASSWORD": pds.admin_password,
        "GATE_PDS_ADMIN_URL": pds.url,
        "GATE_BANKS_DIR": str(banks),
    }
    watch = Watch(labeler, pds, counter, e2e_dir, policy, env)
    alice = new_user(Endpoint("pds", pds.url, True))
    bob = new_user(Endpoint("pds", pds.url, True))
    watch.start()
    try:

        def reading() -> bool:  # a post without a blob, until the watcher has read one event
            alice.client.send_post(text="hello", profile_identify=alice.did)
            return watch.metric("upload_gate_firehose_events_total") > 0

        wait_for("the watcher to read the firehose", reading)
        held_uri = str(bob.post_image(held, "held").uri)
        near_uri = str(alice.post_image(near, "near").uri)
        alice_uri = str(alice.post_image(banned, "banked").uri)
        bob_uri = str(bob.post_image(banned, "banked too").uri)
        clean_uri = str(alice.post_image(clean, "clean").uri)
        wait_for(
            "all judged",
            lambda: (
                {held_uri, near_uri, alice_uri, clean_uri} <= {r["record_uri"] for r in watch.decisions()}
            ),
        )

        def served(user: User, data: bytes) -> int:
            r = httpx.get(
                f"{pds.url}/xrpc/com.atproto.sync.getBlob",
                params={"did": user.did, "cid": cid_of(data)},
                timeout=30,
            )
            return r.status_code

        wait_for("both repos' copies taken down", lambda: served(bob, banned) == 400, 30)
        assert served(alice, banned) == 400
        assert served(alice, near) == 400
        assert served(alice, clean) == 200
        assert served(bob, held) == 200  # quarantine: a reviewer decides

        rows = {r["record_uri"]: r for r in watch.decisions()}
        for uri, rule in ((near_uri, "banned-pdq"), (alice_uri, "banned-exact")):
            assert (rows[uri]["verdict"], rows[uri]["rule"]) == ("reject", rule)
            assert [(a["action"], a["result"]) for a in rows[uri]["actions"]] == [("takedown", "done")]
        assert rows[clean_uri]["actions"] == [] and rows[held_uri]["actions"] == []
        assert rows[held_uri]["verdict"] == "quarantine"
        assert bob_uri not in rows  # the same CID as alice's: judged once, not fetched again
        assert counter.fetches[cid_of(banned)] == 1
    finally:
        watch.stop()
        for user in (alice, bob):
            user.client.request.close()
            delete_account(pds, user.did)


def delete_account(pds: Pds, did: str) -> None:
    """As the PDS's admin: the repo, its blobs and its takedowns gone from what later tests list."""
    auth = base64.b64encode(f"admin:{pds.admin_password}".encode()).decode()
    r = httpx.post(
        f"{pds.url}/xrpc/com.atproto.admin.deleteAccount",
        json={"did": did},
        headers={"Authorization": f"Basic {auth}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
