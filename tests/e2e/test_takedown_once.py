"""A blob is taken down once, against the real PDS. ``upload-gate scan retro`` takes a banked blob down;
then, its ``retro`` row deleted (as if the hunt had been killed after the takedown and before it wrote the
row), it runs again, re-judges the blob and finds it taken down already: ``takedown:already`` in the tally
and the new row, one audited takedown and a ``takedown_already``, one slot of the daily cap (full for the
second run, and no matter), the PDS's ref still the first hunt's, getBlob still "Blob not found". A PDS
that cannot answer the status question still gets the takedown.

The stored decision is a real one: the account posts straight to the PDS and ``upload-gate scan`` judges
the picture clean before its hash is banked. The gate's admin calls go through a front, a real HTTP server
that forwards them to the PDS, counts the takedowns and can answer getSubjectStatus (or every call) with
a 503.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import pytest
from aiohttp import web
from yarl import URL

from gate.pds_admin import PdsActionError, PdsAdmin
from tests.e2e import images
from tests.e2e.endpoints import Endpoint, User, new_user
from tests.e2e.gate_server import POLICY
from tests.e2e.pds_server import Pds
from tests.support.boot import gate_command, gate_env
from tests.support.cids import cid_of
from tests.support.serving import serving

pytestmark = [
    pytest.mark.e2e,
    # The atproto SDK's upload passes bytes as httpx's data=.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"),
]

SCAN_POLICY = POLICY + '\n[scan]\nreject = ["withhold", "takedown"]\nquarantine = []\n'
TAKEDOWN = "/xrpc/com.atproto.admin.updateSubjectStatus"
STATUS = "/xrpc/com.atproto.admin.getSubjectStatus"


@dataclass
class AdminFront:
    """Forwards the gate's admin calls to the PDS; records each takedown's body; ``status_down`` makes
    getSubjectStatus answer 503 (the takedown itself still reaches the PDS), ``down`` every call."""

    pds: str
    takedowns: list[dict[str, Any]] = field(default_factory=list)
    status_down: bool = False
    down: bool = False

    def taken_down(self, cid: str) -> int:
        return sum(1 for t in self.takedowns if t["subject"].get("cid") == cid)

    async def forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.down or (request.path == STATUS and self.status_down):
            return web.json_response({"error": "Unavailable", "message": "down for this test"}, status=503)
        if request.path == TAKEDOWN:
            self.takedowns.append(json.loads(body))
        headers = {"Authorization": request.headers.get("Authorization", "")}
        if body:
            headers["Content-Type"] = request.headers.get("Content-Type", "application/json")
        async with aiohttp.ClientSession() as s:
            async with s.request(
                request.method, self.pds + request.path_qs, data=body or None, headers=headers
            ) as r:
                return web.Response(status=r.status, body=await r.read(), content_type=r.content_type)


@pytest.fixture
async def front(pds: Pds) -> AsyncIterator[tuple[AdminFront, str]]:
    admin = AdminFront(pds.url)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", admin.forward)
    async with serving(app) as url:
        yield admin, url


@pytest.fixture
def users(pds: Pds) -> Iterator[list[User]]:
    """Accounts made by a test, deleted after it as the PDS's admin: the PDS is shared with the other
    end-to-end tests, and a whole-PDS scan would find these taken-down blobs unavailable."""
    made: list[User] = []
    yield made
    for user in made:
        user.client.request.close()
        r = httpx.post(
            f"{pds.url}/xrpc/com.atproto.admin.deleteAccount",
            json={"did": user.did},
            headers=admin(pds),
            timeout=30,
        )
        assert r.status_code == 200, r.text


@dataclass
class Setup:
    """The gate's settings (its policy, banks and Postgres) as ``upload-gate scan`` runs on them."""

    env: dict[str, str]
    banks: Path
    dsn: str

    async def run(self, *args: str, **extra: str) -> dict[str, Any]:
        result = await asyncio.to_thread(gate_command, "scan", *args, "--json", env={**self.env, **extra})
        assert result.returncode == 0, result.stderr
        out: dict[str, Any] = json.loads(result.stdout)
        return out

    def ban(self, picture: bytes) -> None:
        with (self.banks / "banned.csv").open("a") as f:
            f.write(f"sha256,{hashlib.sha256(picture).hexdigest()},banked after it was posted\n")

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def audit(self, cid: str) -> dict[str, int]:
        rows = await self.fetch(
            "SELECT action, count(*) AS n FROM audit WHERE detail->>'cid' = $1 GROUP BY action", cid
        )
        return {r["action"]: r["n"] for r in rows}

    async def retro_rows(self, cid: str) -> list[asyncpg.Record]:
        return await self.fetch("SELECT id, actions FROM decisions WHERE source = 'retro' AND cid = $1", cid)


@pytest.fixture
def setup(tmp_path: Path, fresh_dsn: str, pds: Pds, front: tuple[AdminFront, str]) -> Setup:
    banks = tmp_path / "banks"
    banks.mkdir()
    for bank in ("banned", "held"):
        (banks / f"{bank}.csv").write_text("signal_type,hash,label\n")
    policy = tmp_path / "policy.toml"
    policy.write_text(SCAN_POLICY)
    env = gate_env(pds.url, fresh_dsn, policy, banks, tmp_path / "data") | {
        "GATE_PDS_ADMIN_PASSWORD": pds.admin_password,
        "GATE_PDS_ADMIN_URL": front[1],
    }
    return Setup(env, banks, fresh_dsn)


async def stored_clean(setup: Setup, pds: Pds, users: list[User], picture: bytes) -> User:
    """An account posting ``picture`` on the PDS, judged clean by a scan: a stored forwarded decision."""
    user = new_user(Endpoint("pds", pds.url, True))
    users.append(user)
    user.post_image(picture)
    scanned = await setup.run("--did", user.did, "--progress", "none")
    assert scanned["verdicts"] == {"forward": 1}, scanned
    return user


def admin(pds: Pds) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{pds.admin_password}".encode()).decode()}


def pds_status(pds: Pds, did: str, cid: str) -> dict[str, Any]:
    """The PDS's own word on the blob (getSubjectStatus, asked directly)."""
    r = httpx.get(f"{pds.url}{STATUS}", params={"did": did, "blob": cid}, headers=admin(pds), timeout=30)
    assert r.status_code == 200, r.text
    takedown: dict[str, Any] = r.json()["takedown"]
    return takedown


def assert_not_served(pds: Pds, did: str, cid: str) -> None:
    r = httpx.get(f"{pds.url}/xrpc/com.atproto.sync.getBlob", params={"did": did, "cid": cid}, timeout=30)
    assert (r.status_code, r.json()["message"]) == (400, "Blob not found"), r.text


async def test_a_hunt_killed_after_its_takedown_does_not_take_the_blob_down_twice(
    setup: Setup, pds: Pds, front: tuple[AdminFront, str], users: list[User]
) -> None:
    picture = images.png(230)
    cid = cid_of(picture)
    user = await stored_clean(setup, pds, users, picture)
    assert pds_status(pds, user.did, cid) == {"applied": False}
    setup.ban(picture)

    first = (await setup.run("retro"))["local"]
    assert (first["judged"], first["actions"]) == (1, {"takedown:done": 1, "withhold:done": 1}), first
    [row] = await setup.retro_rows(cid)
    ref = f"upload-gate:{row['id'].hex}"
    assert pds_status(pds, user.did, cid) == {"applied": True, "ref": ref}
    assert_not_served(pds, user.did, cid)

    # Killed after the takedown, before the row: the next hunt finds the decision not re-judged.
    await setup.fetch("DELETE FROM decisions WHERE source = 'retro'")
    # The cap full (the first takedown used today's one slot): a takedown now would be refused as capped.
    again = (await setup.run("retro", GATE_TAKEDOWN_DAILY_CAP="1"))["local"]
    assert (again["judged"], again["already_rejudged"]) == (1, 0), again
    assert again["actions"] == {"takedown:already": 1, "withhold:done": 1}, again
    [row] = await setup.retro_rows(cid)
    actions = {a["action"]: a for a in json.loads(row["actions"])}
    assert actions["takedown"]["result"] == "already"
    assert ref in actions["takedown"]["detail"]

    assert await setup.audit(cid) == {"takedown": 1, "takedown_already": 1}
    assert front[0].taken_down(cid) == 1  # one updateSubjectStatus ever reached the PDS
    assert pds_status(pds, user.did, cid) == {"applied": True, "ref": ref}  # the first hunt's, untouched
    assert_not_served(pds, user.did, cid)


async def test_a_pds_that_cannot_say_still_gets_the_takedown(
    setup: Setup, pds: Pds, front: tuple[AdminFront, str], users: list[User]
) -> None:
    picture = images.png(231)
    cid = cid_of(picture)
    user = await stored_clean(setup, pds, users, picture)
    setup.ban(picture)
    front[0].status_down = True

    hunt = (await setup.run("retro"))["local"]
    assert hunt["actions"] == {"takedown:done": 1, "withhold:done": 1}, hunt
    assert front[0].taken_down(cid) == 1
    assert await setup.audit(cid) == {"takedown": 1}
    [detail] = await setup.fetch("SELECT detail FROM audit WHERE action = 'takedown'")
    status = json.loads(detail["detail"])["status"]
    assert status.startswith("unknown: the PDS answered 503") and "down for this test" in status, status
    assert pds_status(pds, user.did, cid)["applied"] is True
    assert_not_served(pds, user.did, cid)


async def test_a_pds_that_is_down_fails_the_takedown_as_before(
    setup: Setup, pds: Pds, front: tuple[AdminFront, str], users: list[User]
) -> None:
    """Neither question nor takedown answered: the takedown is ``failed`` and its slot given back, as any
    takedown the PDS does not take; the blob stays up on the PDS (withheld by the gate's row)."""
    picture = images.png(232)
    cid = cid_of(picture)
    user = await stored_clean(setup, pds, users, picture)
    setup.ban(picture)
    front[0].down = True

    hunt = (await setup.run("retro"))["local"]
    assert hunt["actions"] == {"takedown:failed": 1, "withhold:done": 1}, hunt
    assert await setup.audit(cid) == {"takedown": 1, "takedown_failed": 1}  # the slot taken, then given back
    assert pds_status(pds, user.did, cid) == {"applied": False}
    r = httpx.get(
        f"{pds.url}/xrpc/com.atproto.sync.getBlob", params={"did": user.did, "cid": cid}, timeout=30
    )
    assert r.content == picture


async def test_the_pds_answers_the_status_of_blobs_it_does_not_have(pds: Pds, users: list[User]) -> None:
    """``PdsAdmin.blob_takedown`` against the real PDS: a blob of the repo not taken down, a CID the repo
    does not hold and a repo the PDS does not host are all "not taken down" (the PDS says NotFound for the
    last two); a wrong password is an error, not an answer."""
    picture = images.png(233)
    user = new_user(Endpoint("pds", pds.url, True))
    users.append(user)
    user.post_image(picture)
    pds_admin = PdsAdmin(URL(pds.url), pds.admin_password)
    assert await pds_admin.blob_takedown(user.did, cid_of(picture)) is None
    assert await pds_admin.blob_takedown(user.did, cid_of(images.png(234))) is None
    assert await pds_admin.blob_takedown("did:plc:notonthispds000000000000", cid_of(picture)) is None
    with pytest.raises(PdsActionError, match="the PDS answered 401"):
        await PdsAdmin(URL(pds.url), "not-the-password").blob_takedown(user.did, cid_of(picture))
