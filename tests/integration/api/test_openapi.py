"""The OpenAPI document: the committed file is what the gate serves, it names every API route, and a
schemathesis run against the live API (bounded examples, fixed seed) finds no 5xx and no answer outside it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from yarl import URL

from gate.admin.review_app import install_review, open_review
from gate.admin.tokens import Role
from gate.api.routes import install_api
from gate.api.service import open_api
from tests.integration.api.conftest import ApiGate, api_gate, banks
from tests.integration.conftest import GateFactory
from tests.support import images
from tests.support.tokens import ALICE_BEARER
from tests.support.upstream import RecordingUpstream

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "docs" / "openapi.json"
ST = Path(sys.executable).with_name("st")


async def test_the_committed_document_is_the_one_served(api: ApiGate) -> None:
    async with aiohttp.ClientSession(base_url=api.url) as c:  # no token: the document is not a secret
        async with c.get("/api/v1/openapi.json") as r:
            assert r.status == 200 and r.content_type == "application/json"
            served = await r.read()
    assert served == COMMITTED.read_bytes(), "regenerate: python -m gate.api.openapi > docs/openapi.json"


async def test_the_document_names_every_api_route_and_only_those(api: ApiGate) -> None:
    """Every route of the service API and of the review JSON API, and nothing else."""
    deps = api.gate.deps
    app = web.Application()
    install_api(app, open_api(deps))
    site = await open_review(
        deps.settings, deps.evidence, deps.database.pool, deps.policy, deps.allowlist, deps.notifier
    )
    install_review(app, site)
    routes = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None
        and r.method != "HEAD"  # aiohttp adds HEAD to every GET
        and r.resource.canonical.startswith(("/api/", "/admin/api/"))
    }
    document = json.loads(COMMITTED.read_text())
    operations = {
        (m.upper(), path) for path, ops in document["paths"].items() for m in ops if m != "parameters"
    }
    assert routes == operations


@pytest.mark.parametrize("tag", ["api", "review"])
async def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], fresh_dsn: str, tmp_path: Path, tag: str
) -> None:
    """Every check schemathesis has, on every operation, generated from the document: positive and
    negative data, undeclared methods, missing auth; its warnings (an operation mostly rate limited or
    never answered 2xx) fail the run too. The token's rate is raised so that the logic behind it is what
    gets tested."""
    api = await api_gate(
        start_gate, upstream, fresh_dsn, banks=banks(), GATE_API_RATE="1000", GATE_API_BURST="1000"
    )
    api.upstream.blobs = {}  # getBlob as the PDS answers it: "Blob not found" for what it does not hold
    config = "[warnings]\nfail-on = true\n"
    token = api.tokens[Role.SERVICE]
    if tag == "review":  # an admin (every review action), and a held item for the routes that name one
        token = api.tokens[Role.ADMIN]
        item, t = await held_item(api)
        config += f'[parameters]\n"path.id" = "{item}"\n"query.subject" = "{item}"\n"query.t" = "{t}"\n'
    (tmp_path / "schemathesis.toml").write_text(config)
    proc = await asyncio.create_subprocess_exec(
        str(ST),
        "run",
        f"{api.url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--include-tag",
        tag,
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--seed",
        "17",
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--no-color",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")


async def held_item(api: ApiGate) -> tuple[str, str]:
    """A near duplicate of a banked picture, uploaded: held for review (its evidence kept); its id, and an
    admin's reveal link token for it."""
    async with api.gate_client() as public:
        headers = {"Authorization": ALICE_BEARER}
        async with public.post(
            "/xrpc/com.atproto.repo.uploadBlob", data=images.near_duplicate(), headers=headers
        ) as r:
            assert (await r.json())["error"] == "BlobHeld"
    conn = await asyncpg.connect(api.dsn)
    try:
        item = str(await conn.fetchval("SELECT decision_id FROM evidence"))
    finally:
        await conn.close()
    async with api.client(role=Role.ADMIN) as c, c.post(f"/admin/api/items/{item}/reveal") as r:
        url = URL((await r.json())["url"])
    return item, url.query["t"]
