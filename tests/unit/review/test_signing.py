"""Reveal links expire and belong to one reviewer and one item; CSRF tokens belong to one login."""

from __future__ import annotations

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
    assert not Signer().check_reveal(token, "rita", "item-1", now=1001)  # another process's key
    assert not signer.check_reveal("garbage", "rita", "item-1", now=1001)


def test_csrf_token_is_per_login() -> None:
    signer = Signer()
    assert signer.check_csrf("token-a", signer.csrf("token-a"))
    assert not signer.check_csrf("token-b", signer.csrf("token-a"))
    assert not signer.check_csrf("token-a", "")
