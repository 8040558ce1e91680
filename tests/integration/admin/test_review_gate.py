"""The review queue on the running gate's admin listener: a held upload, released by a reviewer, passes
on retry; the review routes never exist on the public listener."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import aiohttp

from gate.admin.tokens import Role, TokenStore
from gate.serve import RunningGate
from tests.integration.conftest import POLICY, GateFactory
from tests.support import images
from tests.support.upstream import RecordingUpstream

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
HOLD_EXACT = (
    'allowlist_banks = ["allowlist"]\n'
    + POLICY
    + '\n[[rules]]\nname = "hold-exact"\nsource = "local"\nbanks = ["review"]\nsignal_types = ["sha256"]\naction = "quarantine"\n'
)


async def add_token(gate: RunningGate, name: str, role: Role) -> str:
    """As ``upload-gate admin token add`` does, in the gate's database."""
    assert gate.deps.database is not None
    return await TokenStore(gate.deps.database.pool).add(name, role, "test")


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


async def upload(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": "Bearer not-checked-by-the-fake-upstream", "Content-Type": "image/jpeg"}
    async with aiohttp.ClientSession() as s, s.post(url + UPLOAD, data=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def test_released_upload_passes_on_retry(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], tmp_path: Path
) -> None:
    rec, _ = upstream
    body = images.jpeg("coffee.png")
    sha = hashlib.sha256(body).hexdigest()
    gate = await start_gate(policy=HOLD_EXACT, banks={"review": f"sha256,{sha},t"})
    token = await add_token(gate, "rita", Role.REVIEWER)
    banks = Path(gate.deps.settings.banks_dir)
    before = snapshot(banks)

    status, answer = await upload(gate.url, body)
    assert (status, answer["error"]) == (400, "BlobHeld")
    assert rec.uploads() == []

    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url=gate.admin_url, headers=auth) as admin:
        async with admin.get("/admin/api/items") as r:
            assert r.status == 200
            [item] = (await r.json())["items"]
        assert item["sha256"] == sha and item["rule"] == "hold-exact"
        async with admin.post(f"/admin/api/items/{item['decision_id']}/release") as r:
            assert r.status == 200

    status, answer = await upload(gate.url, body)
    assert status == 200, answer
    [seen] = rec.uploads()
    assert seen.body == body
    # The release went to Postgres, not to the bank files (read-only in every shipped deployment).
    assert snapshot(banks) == before


async def test_a_release_counts_on_every_replica(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], tmp_path: Path
) -> None:
    """Two gates on one database (replicas, or workers): a release on one is honoured by the other
    within its reload interval, and the other's cached verdict does not outlive it."""
    rec, _ = upstream
    body = images.jpeg("coffee.png")
    sha = hashlib.sha256(body).hexdigest()
    first = await start_gate(policy=HOLD_EXACT, banks={"review": f"sha256,{sha},t"})
    token = await add_token(first, "rita", Role.REVIEWER)
    second = await start_gate(policy=HOLD_EXACT, banks={"review": f"sha256,{sha},t"})
    assert (await upload(second.url, body))[0] == 400  # held there too (and its verdict cached)
    status, _ = await upload(first.url, body)
    assert status == 400
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url=first.admin_url, headers=auth) as admin:
        async with admin.get("/admin/api/items") as r:
            items = (await r.json())["items"]
        for item in items:
            async with admin.post(f"/admin/api/items/{item['decision_id']}/release") as r:
                assert r.status in (200, 409)  # the second item of the same bytes may already be done
    for _ in range(50):
        status, _ = await upload(second.url, body)
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert status == 200
    assert [u.body for u in rec.uploads()] == [body]


async def test_review_routes_are_not_on_the_public_listener(start_gate: GateFactory, tmp_path: Path) -> None:
    gate = await start_gate()
    token = await add_token(gate, "rita", Role.ADMIN)
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=auth) as s:
        async with s.get(gate.admin_url + "/admin/api/items") as r:
            assert r.status == 200
        async with s.get(gate.admin_url + "/review/login") as r:
            assert r.status == 200
        # The public listener proxies everything to the PDS: the stand-in answers, not the review site.
        async with s.get(gate.url + "/admin/api/items") as r:
            body = await r.json(content_type=None)
            assert "items" not in body and body.get("path") == "/admin/api/items"


async def test_admin_listen_gives_the_review_site_its_own_listener(
    start_gate: GateFactory, tmp_path: Path
) -> None:
    gate = await start_gate(GATE_ADMIN_LISTEN="127.0.0.1:0")
    token = await add_token(gate, "rita", Role.REVIEWER)
    assert gate.review is not None and gate.review_url != gate.admin_url
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=auth) as s:
        async with s.get(gate.review_url + "/admin/api/items") as r:
            assert r.status == 200
        async with s.get(gate.admin_url + "/admin/api/items") as r:
            assert r.status == 404
        async with s.get(gate.admin_url + "/metrics") as r:
            assert r.status == 200
