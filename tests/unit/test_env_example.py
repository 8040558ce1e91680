"""``config/gate.env.example`` is the reference for process settings: it lists every setting of
``gate/settings.py``, each with its own comment, at its default. A new setting without its line fails
here with the exact lines to add."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from gate.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "gate.env.example"


@dataclass(frozen=True)
class Line:
    lineno: int
    value: str
    commented: bool  # a comment of its own right above it (a "# ---- section ----" header does not count)


def example_lines(text: str) -> dict[str, list[Line]]:
    out: dict[str, list[Line]] = {}
    comment = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#"):
            comment = comment or not line.startswith("# ----")
            continue
        if line and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(Line(lineno, value.strip(), comment))
        comment = False
    return out


def problems_with(text: str) -> list[str]:
    lines = example_lines(text)
    problems: list[str] = []
    declared = {f.metadata["env"] for f in fields(Settings)}
    for f in fields(Settings):
        name, default, helptext = f.metadata["env"], f.metadata["default"], f.metadata["help"]
        parse = f.metadata["parser"]
        found = lines.get(name)
        if not found:
            problems.append(
                f"{name} is missing. Add, in its section:\n    # {helptext}\n    {name}={default}"
            )
            continue
        if len(found) > 1:
            problems.append(
                f"{name} is listed {len(found)} times (lines {[x.lineno for x in found]}): keep one"
            )
        line = found[0]
        if not line.commented:
            problems.append(
                f"{name} (line {line.lineno}) has no comment of its own: add a line right above it, "
                f"e.g.\n    # {helptext}"
            )
        try:
            same = parse(line.value) == parse(default)
        except ValueError:
            same = False
        if not same:
            problems.append(
                f"{name}={line.value} (line {line.lineno}) is not the default: write {name}={default}"
            )
    for name, found in lines.items():
        if name not in declared:
            problems.append(
                f"{name} (line {found[0].lineno}) is not a setting of gate/settings.py: remove it"
            )
    return problems


def test_every_setting_is_listed_commented_and_at_its_default() -> None:
    problems = problems_with(EXAMPLE.read_text(encoding="utf-8"))
    assert not problems, "config/gate.env.example does not match gate/settings.py:\n" + "\n".join(problems)


def test_the_example_as_an_env_file_gives_exactly_the_defaults() -> None:
    assert Settings.from_env({}, env_file=EXAMPLE) == Settings.from_env({})


def test_the_check_names_what_to_add_fix_or_remove() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    broken = (
        text.replace("# Seconds for one delivery.\n", "")  # GATE_WEBHOOK_TIMEOUT loses its comment
        .replace("GATE_HMA_RETRIES=1", "GATE_HMA_RETRIES=4")
        .replace("GATE_LOG_FORMAT=text\n", "")
        + "# an old one\nGATE_NO_SUCH_THING=1\n"
    )
    found = "\n".join(problems_with(broken))
    assert "GATE_LOG_FORMAT is missing. Add, in its section:\n    # text (one line each)" in found
    assert "\n    GATE_LOG_FORMAT=text" in found
    assert "GATE_WEBHOOK_TIMEOUT (line" in found and "has no comment of its own" in found
    assert "GATE_HMA_RETRIES=4 (line" in found and "write GATE_HMA_RETRIES=1" in found
    assert "GATE_NO_SUCH_THING (line" in found and "remove it" in found
    assert len(problems_with(broken)) == 4
