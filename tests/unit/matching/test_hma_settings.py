"""GATE_HMA_* settings: unset URL means no HMA matcher; bad values are refused loudly."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from gate.matching.hma import HmaMatcher
from gate.settings import Settings, SettingsError


def test_no_hma_url_means_no_hma_matcher() -> None:
    assert HmaMatcher.from_settings(Settings.from_env({})) is None


async def test_an_hma_url_builds_a_matcher_with_the_configured_limits() -> None:
    settings = Settings.from_env(
        {
            "GATE_HMA_URL": "http://10.0.0.5:5000",
            "GATE_HMA_DEADLINE": "1.5",
            "GATE_HMA_CACHE_SIZE": "7",
            "GATE_HMA_BREAKER_FAILURES": "4",
        }
    )
    matcher = HmaMatcher.from_settings(settings)
    assert matcher is not None
    assert (matcher.client.base_url, matcher.deadline, matcher.cache.max_size) == (
        "http://10.0.0.5:5000",
        1.5,
        7,
    )
    assert matcher.breaker.failure_threshold == 4
    await matcher.aclose()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATE_HMA_URL", "ftp://hma"),
        ("GATE_HMA_TIMEOUT", "0"),
        ("GATE_HMA_CONCURRENCY", "0"),
        ("GATE_HMA_CACHE_TTL", "x"),
    ],
)
def test_bad_hma_settings_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_the_example_env_file_documents_every_hma_setting() -> None:
    example = Path(__file__).parents[3] / "config" / "gate.env.example"
    names = {
        line.split("=", 1)[0] for line in example.read_text().splitlines() if line.startswith("GATE_HMA_")
    }
    declared = {f.metadata["env"] for f in fields(Settings) if f.metadata["env"].startswith("GATE_HMA_")}
    assert names == declared
    assert Settings.from_env({}, env_file=example).hma_url is None
