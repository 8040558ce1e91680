"""Log settings are validated like every other setting; the JSON format is one fixed-shape object per
line and, like the text format, masks anything shaped like a credential."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from gate.logging_setup import JsonFormatter, TextFormatter, redact
from gate.settings import Settings, SettingsError

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjOmFiYyJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(("raw", "level"), [("info", "INFO"), (" Debug ", "DEBUG"), ("WARNING", "WARNING")])
def test_log_levels_are_read_in_any_case(raw: str, level: str) -> None:
    assert Settings.from_env({"GATE_LOG_LEVEL": raw}).log_level == level


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATE_LOG_LEVEL": "verbose"}, "GATE_LOG_LEVEL='verbose': expected one of DEBUG, INFO, WARNING"),
        ({"GATE_LOG_LEVEL": "warn"}, "GATE_LOG_LEVEL='warn': expected one of"),
        ({"GATE_LOG_FORMAT": "xml"}, "GATE_LOG_FORMAT='xml': expected text or json"),
    ],
)
def test_bad_log_settings_are_settings_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"upstream said no to Bearer {JWT}")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("gate.test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_json_lines_have_fixed_keys_and_one_line_each() -> None:
    line = JsonFormatter().format(_record("two\nlines and a %s", "tab\there"))
    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message", "pid"}
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "WARNING",
        "gate.test",
        "two\nlines and a tab\there",
    )
    assert entry["time"].endswith("+00:00")


def test_json_lines_carry_the_traceback_masked() -> None:
    entry = json.loads(JsonFormatter().format(_record("failed", exc=True)))
    assert "RuntimeError: upstream said no to Bearer <redacted>" in entry["exception"]
    assert JWT not in json.dumps(entry)


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {JWT}",
        f"DPoP {JWT}",
        "Basic YWRtaW46aHVudGVyMg==",
        f"token={JWT}",
    ],
)
def test_credentials_never_reach_a_line_in_either_format(text: str) -> None:
    secret = text.rsplit(maxsplit=1)[-1].removeprefix("token=")
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(_record("request with %s", text))
        assert secret not in line and "<redacted>" in line


def test_ordinary_messages_are_left_alone() -> None:
    text = "policy 59cb1cdef5b101ba loaded; sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert redact(text) == text
