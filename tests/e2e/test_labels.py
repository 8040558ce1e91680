"""The labeler as an atproto peer sees it: a gate run as operators run it (``upload-gate labeler init``,
``serve``), labels written with ``upload-gate labeler label/negate``, and read by Node with the npm
packages the network itself uses — @atproto/api for queryLabels, a websocket + @atproto/common's DAG-CBOR
for subscribeLabels, @atproto/crypto for every signature."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import gate_server, pds_server
from tests.e2e.endpoints import Images
from tests.support.boot import gate_command

PEER = Path(__file__).parent / "labels_peer.js"
LABELER_DID = "did:plc:e2elabeler0000000000000"
POST = "at://did:plc:e2eauthor00000000000000/app.bsky.feed.post/3kabc"
ACCOUNT = "did:plc:e2eauthor00000000000000"


@pytest.fixture(scope="module")
def labeler(e2e_dir: Path, pds: pds_server.Pds, pictures: Images) -> Iterator[tuple[gate_server.Gate, str]]:
    key_file = e2e_dir / "labeler" / "labeler-key.json"
    made = gate_command("labeler", "init", str(key_file), "--endpoint", "https://labeler.example")
    assert made.returncode == 0, made.stderr
    did_key = made.stdout.split("labeler key: ", 1)[1].split()[0]
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    gate = gate_server.start(
        e2e_dir,
        pds.url,
        {"banned": [pictures.folder / "banned.png"], "held": [pictures.folder / "held.png"]},
        name="labeler-gate",
        extra_env={
            "GATE_LABELER_DID": LABELER_DID,
            "GATE_LABELER_KEY_FILE": str(key_file),
            "GATE_LABELS_POLL_INTERVAL": "0.2",
        },
    )
    try:
        yield gate, did_key
    finally:
        gate.stop()


def cli(gate: gate_server.Gate, *args: str) -> str:
    result = gate_command("labeler", *args, env=gate.env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_labels_verify_with_the_networks_own_packages(labeler: tuple[gate_server.Gate, str]) -> None:
    gate, did_key = labeler
    cli(gate, "label", POST, "hash-match", "review-pending")
    cli(gate, "label", ACCOUNT, "hash-match-account")
    cli(gate, "negate", POST, "review-pending")
    node_env = {**os.environ, "NODE_PATH": str(pds_server.install() / "node_modules")}
    # Subscribed from the first label: four frames in the log, then two written while it listens.
    peer = subprocess.Popen(
        ["node", str(PEER), gate.url, did_key, "6", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=node_env,
    )
    try:
        assert peer.stdout is not None
        assert peer.stdout.readline().strip() == "subscribed"
        cli(gate, "label", POST, "review-pending")
        cli(gate, "negate", ACCOUNT, "hash-match-account")
        out, err = peer.communicate(timeout=60)
    finally:
        peer.kill()
    assert peer.returncode == 0, err
    seen = json.loads(out)

    # queryLabels (before the last two): each label's current state, negations included, all signed.
    query = {(x["uri"], x["val"]): x for x in seen["query"]}
    assert set(query) == {(POST, "hash-match"), (POST, "review-pending"), (ACCOUNT, "hash-match-account")}
    assert query[(POST, "review-pending")]["neg"] is True
    assert "neg" not in query[(POST, "hash-match")]
    for label in seen["query"]:
        assert label["valid"] is True, label
        assert (label["ver"], label["src"], label["sigLength"]) == (1, LABELER_DID, 64)
        assert label["cts"].endswith("Z")
    assert seen["queryCursor"] == "4"

    # subscribeLabels from cursor 0: the whole log in order, then the two written live, each verified.
    stream = seen["stream"]
    assert [x["seq"] for x in stream] == [1, 2, 3, 4, 5, 6]
    assert [(x["uri"], x["val"], x.get("neg", False)) for x in stream] == [
        (POST, "hash-match", False),
        (POST, "review-pending", False),
        (ACCOUNT, "hash-match-account", False),
        (POST, "review-pending", True),
        (POST, "review-pending", False),
        (ACCOUNT, "hash-match-account", True),
    ]
    assert all(x["valid"] for x in stream), stream
    assert seen["future"]["header"] == {"op": -1}
    assert seen["future"]["body"]["error"] == "FutureCursor"


VERIFY_JWT = """
const { verifyJwt } = require('@atproto/xrpc-server')
const [token, aud, lxm, iss, didKey] = process.argv.slice(1)
verifyJwt(token, aud, lxm, async (asked) => {
  if (asked !== iss) throw new Error(`asked for the key of ${asked}`)
  return didKey
}).then(
  (payload) => console.log(JSON.stringify(payload)),
  (err) => { console.log(JSON.stringify({ error: err.error || err.message })); process.exit(1) },
)
"""


def test_reports_service_auth_verifies_with_the_networks_own_verifier() -> None:
    """The token a firehose report carries (gate/labels/service_auth) as @atproto/xrpc-server's
    verifyJwt — what a PDS, an AppView and Ozone check service auth with — sees it: accepted for its
    audience and method with the labeler's published key, refused for another method or key."""
    from gate.labels.key import LabelerKey
    from gate.labels.service_auth import service_jwt

    key, other = LabelerKey.from_hex("5a" * 32), LabelerKey.from_hex("5b" * 32)
    aud, lxm = "did:web:mod.example", "com.atproto.moderation.createReport"
    token = service_jwt(key, LABELER_DID, aud, lxm)
    node_env = {**os.environ, "NODE_PATH": str(pds_server.install() / "node_modules")}

    def verify(lxm_asked: str, did_key: str) -> tuple[int, dict[str, object]]:
        iss = f"{LABELER_DID}#atproto_labeler"
        done = subprocess.run(
            ["node", "-e", VERIFY_JWT, token, aud, lxm_asked, iss, did_key],
            capture_output=True,
            text=True,
            env=node_env,
            timeout=60,
            check=False,
        )
        return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])

    code, payload = verify(lxm, key.did_key)
    assert code == 0, payload
    assert (payload["iss"], payload["aud"], payload["lxm"]) == (f"{LABELER_DID}#atproto_labeler", aud, lxm)
    assert verify("com.atproto.repo.createRecord", key.did_key) == (1, {"error": "BadJwtLexiconMethod"})
    assert verify(lxm, other.did_key) == (1, {"error": "BadJwtSignature"})
