"""Whatever an uploader, HMA or a bank file put into an item is shown on the review page as text: a
hostile DID, bank name, rule, reason, content id, firehose record URI or verification note is escaped in the HTML, runs no
script in Chromium, and reads back exactly as it was written."""

from __future__ import annotations

import dataclasses
import html

import aiohttp
from playwright.async_api import Browser, Dialog

from gate.signals import SignalType
from gate.store.retention import Retention
from gate.types import Match, Uploader
from tests.integration.admin.conftest import ReviewEnv
from tests.integration.admin.test_review_page_browser import browser, login
from tests.integration.quarantine.conftest import judged
from tests.support import images

__all__ = ["browser"]  # the fixture, shared with the other browser tests

DID = 'did:plc:"><script>alert("did")</script>'
BANK = "<img src=x onerror=alert('bank')>"
RULE = "</code><script>alert('rule')</script>"
REASON = "reason & <b onmouseover=alert(1)>bold</b>"
CONTENT = '"><iframe src="javascript:alert(2)">'
# A firehose item's record: its collection and rkey are whatever the author's PDS put in the commit.
RECORD = 'at://did:plc:x/com.example.x/"><script>alert("record")</script>'
HOSTILE = (DID, BANK, RULE, REASON, CONTENT, RECORD)


async def _hostile_item(env: ReviewEnv) -> str:
    body = images.jpeg()
    record = judged(body)
    match = Match("hma", BANK, SignalType.PDQ, 3, content_id=CONTENT, label=REASON)
    assert record.decision is not None
    decision = dataclasses.replace(
        record.decision, rule=RULE, reason=REASON, matches=(match,), all_matches=(match,)
    )
    record = dataclasses.replace(
        record, uploader=Uploader(DID, "access_jwt", "pds", DID), decision=decision, record_uri=RECORD
    )
    await env.store.vault.keep(record, body, Retention())
    item = await env.store.items.get(record.id)
    assert item is not None
    return item.decision_id


async def test_hostile_fields_are_escaped_in_the_html(env: ReviewEnv) -> None:
    item_id = await _hostile_item(env)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=env.url, cookie_jar=jar) as c:
        async with c.post("/review/login", data={"token": env.admin}, allow_redirects=False) as r:
            assert r.status == 303
        pages = []
        for path in ("/review", f"/review/item/{item_id}"):
            async with c.get(path) as r:
                assert r.status == 200 and r.content_type == "text/html"
                pages.append(await r.text())
    for page in pages:
        for value in (DID, BANK, RULE, REASON, RECORD):
            assert value not in page
            assert html.escape(value).replace("&#x27;", "&#39;").replace("&quot;", "&#34;") in page
        assert "<script>alert" not in page and "<img src=x" not in page
        assert page.count("<script") == 0  # no reveal on these pages: not even the gate's own script
    assert CONTENT not in pages[1] and "<iframe" not in pages[1]


async def test_hostile_fields_run_nothing_and_read_back_as_written(env: ReviewEnv, browser: Browser) -> None:
    item_id = await _hostile_item(env)
    page = await browser.new_page()
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await login(page, env, env.admin)
    queue = await page.inner_text(f'tr[data-item="{item_id}"]')
    await page.goto(f"{env.url}/review/item/{item_id}")
    item = await page.inner_text("main")
    assert await page.locator("main script, main iframe, main b, main img[src=x]").count() == 0
    for value in (DID, RULE, REASON, RECORD):
        assert value in queue and value in item
    assert BANK in item and CONTENT in item
    assert dialogs == []
