"""A small Dockerfile reader: instructions per build stage, continuation lines joined, comments dropped."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON-array form of CMD/ENTRYPOINT/HEALTHCHECK CMD (shell form is not accepted here)."""
        text = self.args.split("CMD", 1)[1].strip() if self.keyword == "HEALTHCHECK" else self.args
        parsed = json.loads(text)
        assert isinstance(parsed, list), f"{self.keyword} must use the exec (JSON array) form"
        return [str(x) for x in parsed]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for inst in self.all("ENV"):
            for pair in shlex.split(inst.args):
                key, _, value = pair.partition("=")
                out[key] = value
        return out


def parse(path: Path) -> tuple[list[Instruction], list[Stage]]:
    """Global instructions (before the first FROM) and the stages."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    header: list[Instruction] = []
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        inst = Instruction(keyword.upper(), " ".join(args.split()))
        if inst.keyword == "FROM":
            words = inst.args.split()
            stages.append(Stage(words[0], words[2] if len(words) > 2 and words[1].upper() == "AS" else None))
        elif stages:
            stages[-1].instructions.append(inst)
        else:
            header.append(inst)
    return header, stages
