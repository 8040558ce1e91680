"""Legal hold on the review page in headless Chromium: an admin places it with the matter it is held
for (release disappears), a reviewer sees it but cannot change it, the admin lifts it. Audited."""

from __future__ import annotations

from playwright.async_api import Browser

from tests.integration.admin.conftest import ReviewEnv
from tests.integration.admin.test_review_page_browser import ARTIFACTS, browser, login
from tests.support import images

__all__ = ["browser"]  # the fixture, shared with the other browser tests


async def test_admins_place_and_lift_a_legal_hold_on_the_page(env: ReviewEnv, browser: Browser) -> None:
    item_id = await env.hold(images.jpeg())
    admin = await browser.new_page()
    await login(admin, env, env.admin)
    await admin.goto(f"{env.url}/review/item/{item_id}")
    assert await admin.locator("#release").count() == 1
    await admin.fill("#hold_reason", "preservation request PR-17")
    await admin.click("#legal-hold")
    await admin.wait_for_selector("#msg")
    assert "Legal hold placed" in await admin.inner_text("#msg")
    assert await admin.locator("#release").count() == 0  # a held item cannot be released
    page_text = await admin.inner_text("main")
    assert "by adam: preservation request PR-17" in page_text
    ARTIFACTS.mkdir(exist_ok=True)
    await admin.screenshot(path=str(ARTIFACTS / "review-legal-hold.png"), full_page=True)

    context = await browser.new_context()  # another login: the reviewer
    reviewer = await context.new_page()
    await login(reviewer, env, env.reviewer)
    await reviewer.goto(f"{env.url}/review?state=held")
    assert "legal hold" in await reviewer.inner_text(f'tr[data-item="{item_id}"]')
    await reviewer.goto(f"{env.url}/review/item/{item_id}")
    assert "preservation request PR-17" in await reviewer.inner_text("main")
    assert await reviewer.locator("#legal-hold, #lift-hold, #release").count() == 0
    await context.close()
    async with env.client(env.reviewer) as c:  # the form's route itself refuses a reviewer
        async with c.post(f"/review/item/{item_id}/lift-hold", data={"reason": "x"}) as r:
            assert r.status == 403

    await admin.fill("#lift_reason", "matter closed")
    await admin.click("#lift-hold")
    await admin.wait_for_selector("#msg")
    assert "Legal hold lifted" in await admin.inner_text("#msg")
    assert await admin.locator("#release").count() == 1
    item = await env.store.items.get(item_id)
    assert item is not None and not item.legal_hold
    trail = await env.audit()
    assert ("adam", "legal_hold", item_id) in trail and ("adam", "legal_hold_lifted", item_id) in trail
