"""Reveal links expire and belong to one reviewer and one item; CSRF tokens belong to one login."""

from __future__ import annotations

import pytest

from gate.admin.signing import Signer


def test_reveal_link_is_bound_to_reviewer_item_and_time() -> None:
    signer = Signer()
    token, expires = signer.reveal("rita", "item-1", ttl=60, now=1000)
    assert expires == 1060
    assert signer.check_reveal(token, "rita", "item-1", now=1059)
    assert not signer.check_reveal(token, "rita", "item-1", now=1061)  # expired
    assert not signer.check_reveal(token, "adam", "item-1", now=1001)  # someone else
    assert not signer.check_reveal(token, "rita", "item-2", now=1001)  # another item
    longer = f"2000.{token.split('.', 1)[1]}"
    assert not signer.check_reveal(longer, "rita", "item-1", now=1001)  # a stretched deadline
    assert not Signer().check_reveal(token, "rita", "item-1", now=1001)  # another key
    assert Signer(b"k" * 32).reveal("rita", "item-1", 60, now=1000) == Signer(b"k" * 32).reveal(
        "rita", "item-1", 60, now=1000
    )  # the same key: the same link, whichever process made it
    assert not signer.check_reveal("garbage", "rita", "item-1", now=1001)


def test_csrf_token_is_per_login() -> None:
    signer = Signer()
    assert signer.check_csrf("token-a", signer.csrf("token-a"))
    assert not signer.check_csrf("token-b", signer.csrf("token-a"))
    assert not signer.check_csrf("token-a", "")


async def test_a_loaded_key_is_fetched_once_and_used_only_once_loaded() -> None:
    calls: list[int] = []

    async def load() -> bytes:
        calls.append(1)
        return b"s" * 32

    signer = Signer(load=load)
    with pytest.raises(RuntimeError, match="ready"):
        signer.csrf("token-a")
    await signer.ready()
    await signer.ready()
    assert calls == [1]
    assert signer.csrf("token-a") == Signer(b"s" * 32).csrf("token-a")
