"""The review page in headless Chromium (Debian's ``chromium``, driven by Playwright): log in with a
token, see the blurred queue, reveal (audited), release and confirm. Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from PIL import Image
from playwright.async_api import Browser, Page, Response, async_playwright

from tests.integration.admin.conftest import TAKEDOWN, VERIFIED_DID, ReviewEnv
from tests.support import images
from tests.support.chromium import ARGS, chromium

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium(), args=ARGS)
        yield b
        await b.close()


async def images_loaded(page: Page) -> None:
    """Every <img> decoded. Polled from Python: the page's CSP forbids eval, so no wait_for_function."""
    for _ in range(200):
        if await page.evaluate(
            "() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("images did not load")


async def login(page: Page, env: ReviewEnv, token: str) -> None:
    await page.goto(env.url + "/review")
    assert page.url.endswith("/review/login")
    await page.fill("#token", token)
    await page.click("#login")
    await page.wait_for_url(env.url + "/review")


async def test_review_in_a_real_browser(env: ReviewEnv, browser: Browser) -> None:
    released_body, confirmed_body = images.jpeg(), images.jpeg("coffee.png")
    released_id = await env.hold(released_body)
    confirmed_id = await env.hold(confirmed_body, verified=True)
    originals = {hashlib.sha256(b).hexdigest() for b in (released_body, confirmed_body)}
    page = await browser.new_page()
    seen: list[tuple[str, str]] = []  # (url, sha256 of the body) of every response the browser got

    async def on_response(response: Response) -> None:
        try:
            seen.append((response.url, hashlib.sha256(await response.body()).hexdigest()))
        except Exception:
            seen.append((response.url, ""))  # redirects have no body

    page.on("response", on_response)

    # Log in; the cookie is HttpOnly and SameSite=Strict.
    await login(page, env, env.admin)
    [cookie] = await page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    assert await page.evaluate("document.cookie") == ""

    # The queue: both items, blurred greyscale previews, never the original bytes.
    rows = page.locator("tr[data-item]")
    assert await rows.count() == 2
    previews = page.locator("img.preview")
    await previews.first.wait_for()
    await page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "review-queue.png"), full_page=True)
    src = await previews.first.get_attribute("src")
    assert src is not None
    preview = await page.request.get(env.url + src)
    im = Image.open(io.BytesIO(await preview.body()))
    assert im.mode == "L" and max(im.size) <= 160
    assert not originals & {h for _, h in seen}

    # Reveal one item: the original appears (audited), and the item is marked as seen by a human.
    await page.click(f'tr[data-item="{released_id}"] a')
    await page.wait_for_url(f"**/review/item/{released_id}")
    await page.click("#reveal")
    revealed = page.locator("#revealed")
    await revealed.wait_for()
    await images_loaded(page)
    await page.screenshot(path=str(ARTIFACTS / "review-revealed.png"), full_page=True)
    assert hashlib.sha256(released_body).hexdigest() in {h for u, h in seen if "/original?" in u}
    assert not originals & {h for u, h in seen if "/original?" not in u}
    trail = await env.audit()
    assert ("adam", "reveal_granted", released_id) in trail and ("adam", "reveal", released_id) in trail
    item = await env.store.items.get(released_id)
    assert item is not None and item.human_viewed

    # Release it: the hash goes to the allowlist, the evidence is deleted.
    await page.click("#release")
    await page.wait_for_selector("#msg")
    assert "Released" in await page.inner_text("#msg")
    sha = hashlib.sha256(released_body).hexdigest()
    assert sha in env.review.allowlist and [r.sha256 for r in await env.review.allowlist.rows()] == [sha]
    item = await env.store.items.get(released_id)
    assert item is not None and not item.has_bytes

    # Confirm the other with a takedown: its DID was verified, so the PDS gets the account action.
    await page.goto(f"{env.url}/review/item/{confirmed_id}")
    await page.check("#takedown")
    await page.click("#confirm")
    await page.wait_for_selector("#msg")
    assert "taken down" in await page.inner_text("#msg")
    await page.screenshot(path=str(ARTIFACTS / "review-confirmed.png"), full_page=True)
    [call] = env.pds.on(TAKEDOWN)
    assert json.loads(call.body)["subject"]["did"] == VERIFIED_DID
    assert ("adam", "confirmed", confirmed_id) in await env.audit()
    assert (ARTIFACTS / "review-queue.png").stat().st_size > 1000


async def test_a_form_post_without_its_csrf_token_is_refused(env: ReviewEnv) -> None:
    item_id = await env.hold(images.jpeg())
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=env.url, cookie_jar=jar) as c:
        async with c.post("/review/login", data={"token": env.admin}, allow_redirects=False) as r:
            assert r.status == 303
        async with c.post(f"/review/item/{item_id}/release", data={}, allow_redirects=False) as r:
            assert r.status == 403
        async with c.post(
            f"/review/item/{item_id}/release", data={"csrf": "0" * 64}, allow_redirects=False
        ) as r:
            assert r.status == 403
    item = await env.store.items.get(item_id)
    assert item is not None and item.state.value == "held"
    assert await env.review.allowlist.rows() == []


async def test_a_login_posted_from_another_site_is_refused(env: ReviewEnv) -> None:
    async with aiohttp.ClientSession(base_url=env.url) as c:
        headers = {"Origin": "https://evil.example"}
        async with c.post(
            "/review/login", data={"token": env.admin}, headers=headers, allow_redirects=False
        ) as r:
            assert r.status == 403
            assert "Set-Cookie" not in r.headers


async def test_a_wrong_token_does_not_log_in(env: ReviewEnv, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(env.url + "/review/login")
    await page.fill("#token", "ugt_wrong")
    await page.click("#login")
    await page.wait_for_url("**/review/login?failed=1")
    assert await page.context.cookies() == []
