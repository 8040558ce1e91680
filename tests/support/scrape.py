"""Read one sample from a gate's /metrics over HTTP, as Prometheus would."""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


async def sample(admin_url: str, name: str, **labels: str) -> float:
    """The value of ``name`` with exactly these labels (0 when absent); summed across a ``pid``
    label (gauges of ``--workers`` gates)."""
    async with aiohttp.ClientSession() as session, session.get(admin_url + "/metrics") as resp:
        text = await resp.text()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and {k: v for k, v in s.labels.items() if k != "pid"} == labels:
                total += s.value
    return total


async def settled_sample(
    admin_url: str, name: str, value: float, timeout: float = 10.0, **labels: str
) -> float:
    """``sample`` once it reads ``value`` (or ``timeout`` passes: the last value read, for the caller's
    assertion): for state the gate reaches at its own pace, such as bytes of a slow body it has read."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await sample(admin_url, name, **labels)) != value:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    return got
