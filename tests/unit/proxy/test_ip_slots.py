"""Which address an upload counts against, and the slot count itself."""

from __future__ import annotations

import pytest

from gate.errors import TooManyUploads
from gate.proxy.ip_slots import IpSlots, slot_key


@pytest.mark.parametrize(
    ("client", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # one /64, one key
        ("[2001:db8:1:3::1]", "2001:db8:1:3::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),  # IPv4-mapped: the IPv4 address
        (None, ""),
        ("not-an-address", "not-an-address"),
    ],
)
def test_slot_keys(client: str | None, key: str) -> None:
    assert slot_key(client) == key


def test_slots_are_held_and_given_back() -> None:
    slots = IpSlots(2)
    with slots.slot("2001:db8::1"), slots.slot("2001:db8::2"):
        with pytest.raises(TooManyUploads), slots.slot("2001:db8::3"):  # same /64
            pass
        with slots.slot("2001:db9::1"):  # another /64
            pass
    with slots.slot("2001:db8::3"), slots.slot("2001:db8::4"):
        pass


def test_zero_means_no_limit() -> None:
    slots = IpSlots(0)
    with slots.slot("203.0.113.1"), slots.slot("203.0.113.1"), slots.slot("203.0.113.1"):
        pass
