"""The real gate (``run_gate``) with its API on the admin listener, a recording stand-in PDS, the session's
Postgres, and a token of each role made as operators make them (``TokenStore.add``, what
``upload-gate admin token add`` calls)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from gate.admin.tokens import Role, TokenStore
from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.serve import RunningGate
from tests.integration.conftest import GateFactory
from tests.support import images
from tests.support.upstream import RecordingUpstream

PHOTO = images.jpeg()


@dataclass
class ApiGate:
    gate: RunningGate
    upstream: RecordingUpstream
    dsn: str
    tokens: dict[Role, str]

    @property
    def url(self) -> str:
        return self.gate.review_url

    def client(self, token: str | None = None, role: Role | None = Role.SERVICE) -> aiohttp.ClientSession:
        """A session on the admin listener, with ``token`` (or the ``role``'s) as its bearer token."""
        token = token if token is not None else (self.tokens[role] if role else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return aiohttp.ClientSession(base_url=self.url, headers=headers)

    def gate_client(self) -> aiohttp.ClientSession:
        """A session on the public listener."""
        return aiohttp.ClientSession(base_url=self.gate.url)

    async def audit(self, action_prefix: str = "api_") -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT actor, action, subject, detail FROM audit WHERE action LIKE $1 ORDER BY id",
                action_prefix + "%",
            )
        finally:
            await conn.close()
        return [dict(r) for r in rows]


async def api_gate(
    start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], dsn: str, **env: Any
) -> ApiGate:
    gate = await start_gate(**env)
    store = TokenStore(gate.deps.database.pool)
    tokens = {role: await store.add(f"the-{role.value}", role, "test") for role in Role}
    return ApiGate(gate, upstream[0], dsn, tokens)


def banks() -> dict[str, str]:
    """PHOTO's SHA-256 in the blocklist (rejected), a near duplicate's PDQ in the review bank (held)."""
    near = hash_bytes(images.near_duplicate(), HashOptions()).pdq[0].hex
    return {
        "blocklist": f"sha256,{hashlib.sha256(PHOTO).hexdigest()},known-bad",
        "review": f"pdq,{near},near",
    }


@pytest.fixture
async def api(start_gate: GateFactory, upstream: tuple[RecordingUpstream, str], fresh_dsn: str) -> ApiGate:
    return await api_gate(start_gate, upstream, fresh_dsn, banks=banks())
