"""A reviewer's release withdraws the labels the released item led to (negation labels, written in the
release's own transaction) — once no other unreleased item still asks for the same label."""

from __future__ import annotations

import uuid

from gate.labels.store import LabelRow, LabelStore
from gate.store.pool import Pool
from tests.integration.admin.conftest import ReviewEnv
from tests.support import images

API = "/admin/api/items"
SRC = "did:plc:labeler000000000000000"
POST = "at://did:plc:author0000000000000000/app.bsky.feed.post/3kaaa"
ACCOUNT = "did:plc:author0000000000000000"


async def release(env: ReviewEnv, item_id: str) -> None:
    async with env.client(env.reviewer) as c, c.post(f"{API}/{item_id}/release") as r:
        assert r.status == 200, await r.text()


def states(rows: list[LabelRow]) -> list[tuple[str, str, bool]]:
    return [(r.label.uri, r.label.val, r.label.neg) for r in rows]


async def test_release_negates_labels_no_other_item_asks_for(env: ReviewEnv) -> None:
    first = await env.hold(images.jpeg())
    second = await env.hold(images.noise_png(3, 128))
    pool = Pool(env.dsn)
    store = LabelStore(pool)
    try:
        # Two images of one post both matched; the first also labelled the account.
        await store.apply(SRC, POST, ["hash-match"], uuid.UUID(first))
        await store.apply(SRC, ACCOUNT, ["hash-match-account"], uuid.UUID(first))
        await store.apply(SRC, POST, ["hash-match"], uuid.UUID(second))
        assert states(await store.since(0, 10)) == [
            (POST, "hash-match", False),
            (ACCOUNT, "hash-match-account", False),
        ]

        await release(env, first)
        # The account label had the first item alone behind it; the post's label still has the second.
        assert states(await store.since(2, 10)) == [(ACCOUNT, "hash-match-account", True)]

        await release(env, second)
        rows = await store.since(3, 10)
        assert states(rows) == [(POST, "hash-match", True)]
        assert rows[0].label.src == SRC and rows[0].label.sig is None  # signed when served
    finally:
        await pool.close()


async def test_confirming_keeps_the_labels(env: ReviewEnv) -> None:
    item = await env.hold(images.jpeg())
    pool = Pool(env.dsn)
    store = LabelStore(pool)
    try:
        await store.apply(SRC, POST, ["hash-match"], uuid.UUID(item))
        async with env.client(env.reviewer) as c, c.post(f"{API}/{item}/confirm") as r:
            assert r.status == 200
        assert states(await store.since(0, 10)) == [(POST, "hash-match", False)]
    finally:
        await pool.close()
