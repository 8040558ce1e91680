"""A web client on another origin (as bsky.app is to a PDS) uploads with ``fetch`` in headless Chromium,
through the gate alone and behind each front: the page reads the gate's refusals — their status and
XRPC error name — exactly as it reads the PDS's own answers. Without the PDS's CORS header on the gate's
answers the browser would hide them: ``TypeError: Failed to fetch``.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.endpoints import FRONTS, Endpoint, User
from tests.e2e.gate_server import QUARANTINE_ERROR, REJECT_ERROR, Gate
from tests.e2e.images import near_duplicate, png
from tests.e2e.procs import LOOPBACK
from tests.support.chromium import ARGS, chromium
from tests.support.cids import cid_of

pytestmark = [pytest.mark.e2e]

UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
PAGE = b"<!doctype html><meta charset=utf-8><title>a web client</title><p>client"
# What the page runs: a cross-origin upload as @atproto/api does it, reporting what the script can see.
FETCH = """async ([url, token, b64]) => {
  const body = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const headers = {"Content-Type": "image/png"};
  if (token) headers["Authorization"] = "Bearer " + token;
  try {
    const r = await fetch(url, {method: "POST", headers, body});
    return {status: r.status, json: await r.json()};
  } catch (e) {
    return {failed: String(e)};
  }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    """The web client's own origin: another host name and port than any endpoint's (both loopback, so
    Chromium's local-network rules do not apply)."""
    server = ThreadingHTTPServer((LOOPBACK, 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, origin: str) -> Iterator[Page]:
    context = browser.new_context(ignore_https_errors=True)  # the fronts' test certificates
    page = context.new_page()
    page.goto(origin)
    yield page
    context.close()


def upload(page: Page, url: str, token: str | None, image: bytes) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(FETCH, [url, token, base64.b64encode(image).decode()])
    return result


def test_the_page_reads_the_gates_answers(
    front: Endpoint,
    gate: Gate,
    page: Page,
    make_user: Callable[[Endpoint], User],
) -> None:
    token = make_user(front).access_jwt
    url = front.url + UPLOAD
    # Copies of the banked pictures with bytes of their own, so other tests' decision rows stay theirs.
    banned, held = (near_duplicate(seed, quality=90 + FRONTS.index(front.name)) for seed in (2, 3))

    refused = upload(page, url, token, banned)
    assert refused == {
        "status": 400,
        "json": {"error": REJECT_ERROR, "message": "e2e: this image is banned here"},
    }
    kept = upload(page, url, token, held)
    assert (kept.get("status"), kept.get("json", {}).get("error")) == (400, QUARANTINE_ERROR), kept
    anonymous = upload(page, url, None, banned)
    assert anonymous == {
        "status": 401,
        "json": {"error": "AuthMissing", "message": "Authentication Required"},
    }
    # The PDS's own answer to a clean upload, relayed by the gate, is readable as before.
    clean = png(50 + FRONTS.index(front.name))
    accepted = upload(page, url, token, clean)
    assert accepted.get("status") == 200, accepted
    assert accepted["json"]["blob"]["ref"]["$link"] == cid_of(clean)


def test_an_answer_without_cors_is_hidden_from_the_page(gate: Gate, page: Page) -> None:
    """The control: the gate's private listener sends no CORS header, and the page cannot read it."""
    hidden = upload(page, gate.metrics_url + "/healthz", None, b"x")
    assert hidden == {"failed": "TypeError: Failed to fetch"}
