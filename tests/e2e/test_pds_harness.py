"""The harness itself: the pinned PDS starts on loopback and a real SDK client can use it."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.pds_server import Pds

pytestmark = pytest.mark.e2e


def test_pds_answers_on_loopback_with_the_pinned_version(pds: Pds) -> None:
    health = httpx.get(f"{pds.url}/xrpc/_health", timeout=10)
    assert health.json() == {"version": "0.4.217"}
    # The official image's tls-check route (Caddy's on-demand TLS asks it) is there too.
    assert httpx.get(f"{pds.url}/tls-check", params={"domain": "localhost"}).json() == {"success": True}
    assert httpx.get(f"{pds.url}/tls-check", params={"domain": "elsewhere.example"}).status_code == 400
