"""The docs keep up with the code: every error class, readiness check and detail, and start-up refusal
has its troubleshooting entry, and every link between the README and docs/ leads to a file."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
from pathlib import Path

import pytest

from tests.unit.test_errors import _exception_classes

ROOT = Path(__file__).resolve().parents[2]
TROUBLESHOOTING = (ROOT / "docs" / "troubleshooting.md").read_text()
HEADINGS = [line for line in TROUBLESHOOTING.splitlines() if line.startswith("#")]
TEXT = " ".join(TROUBLESHOOTING.split())  # as read: an entry may wrap a long message


def _sources() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(), str(p)) for p in sorted((ROOT / "gate").rglob("*.py"))}


def _segments(node: ast.AST) -> list[str]:
    """The literal text of a string or f-string (the parts between placeholders), stripped."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        parts = [node.value]
    elif isinstance(node, ast.JoinedStr):
        parts = [v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    else:
        return []
    # Punctuation between placeholders ("; ", " (") says nothing on its own.
    return [s for p in parts for s in [p.strip(" ;:()\n")] if sum(c.isalpha() for c in s) >= 3]


def _readiness_details() -> set[str]:
    """What readiness checks (functions answering ``tuple[bool, str]``) return or build as their detail,
    and the details handed to them ready-made (``HmaStatus(detail="I-AM-ALIVE")``)."""
    found: set[str] = set()
    for tree in _sources().values():
        for call in ast.walk(tree):
            if isinstance(call, ast.Call):
                details = [kw.value for kw in call.keywords if kw.arg == "detail"]
                found |= {s for d in details for sub in ast.walk(d) for s in _segments(sub)}
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) or fn.returns is None:
                continue
            if ast.unparse(fn.returns) != "tuple[bool, str]":
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Return) and node.value is not None:
                    found |= {s for sub in ast.walk(node.value) for s in _segments(sub)}
                elif isinstance(node, ast.Assign | ast.AugAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if any(isinstance(t, ast.Name) and t.id == "detail" for t in targets):
                        found |= {s for sub in ast.walk(node.value) for s in _segments(sub)}
    return found


def _readiness_checks() -> set[str]:
    """The names /readyz reports: ``checks["name"] = …`` in the composition root."""
    tree = ast.parse((ROOT / "gate" / "deps.py").read_text())
    return {
        t.slice.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Subscript)
        and isinstance(t.value, ast.Name)
        and t.value.id == "checks"
        and isinstance(t.slice, ast.Constant)
        and isinstance(t.slice.value, str)
    }


def _refusals() -> set[str]:
    """What ``upload-gate serve`` prints when it will not start: the literal text of each ``fatal(…)``."""
    found: set[str] = set()
    for tree in _sources().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "fatal":
                found |= {s for arg in node.args for s in _segments(arg)}
    return found


def test_every_error_class_has_an_entry() -> None:
    missing = sorted(name for name in _exception_classes() if not any(f"### `{name}`" in h for h in HEADINGS))
    assert missing == [], f"docs/troubleshooting.md has no '### `Name`' entry for {missing}"


def test_each_xrpc_entry_names_the_status_and_error_a_client_gets() -> None:
    from gate.errors import XrpcError

    wrong = []
    for name, cls in _exception_classes().items():
        if not issubclass(cls, XrpcError):
            continue
        [head] = [h for h in HEADINGS if f"### `{name}`" in h]
        if "the policy's status" in head:  # BlockedUpload answers what the policy's [responses] say
            continue
        if f"{cls.status} `{cls.error}`" not in head:
            wrong.append(f"{head} (the code: {cls.status} {cls.error})")
    assert wrong == []


def test_every_readiness_check_has_a_section() -> None:
    checks = _readiness_checks()
    assert {"policy", "decision_log", "evidence"} <= checks  # the parse found the registrations
    missing = sorted(name for name in checks if not any(f"### `{name}`" in h for h in HEADINGS))
    assert missing == [], f"docs/troubleshooting.md has no section for the /readyz checks {missing}"


def test_every_readiness_detail_has_an_entry() -> None:
    details = _readiness_details()
    assert {"decision log not accepting", "I-AM-ALIVE"} <= details  # the parse found the checks
    missing = sorted(d for d in details if " ".join(d.split()) not in TEXT)
    assert missing == [], f"/readyz details without an entry in docs/troubleshooting.md: {missing}"


def test_every_start_up_refusal_has_an_entry() -> None:
    refusals = _refusals()
    assert "no evidence key, not starting" in refusals  # the parse found them
    missing = sorted(r for r in refusals if " ".join(r.split()) not in TEXT)
    assert missing == [], f"start-up refusals without an entry in docs/troubleshooting.md: {missing}"


def test_the_webhook_page_names_every_event_and_field() -> None:
    page = (ROOT / "docs" / "webhooks.md").read_text()
    tree = ast.parse((ROOT / "gate" / "notify" / "event.py").read_text())
    types = {
        n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
    }
    [build] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "decision_event"]
    fields = {
        k.value
        for d in ast.walk(build)
        if isinstance(d, ast.Dict)
        for k in d.keys
        if isinstance(k, ast.Constant) and isinstance(k.value, str)
    }
    assert {"upload.quarantined", "review.takedown"} <= types and {"decision_id", "uploader", "did"} <= fields
    missing = sorted(x for x in types | fields if f"`{x}`" not in page)
    assert missing == [], f"docs/webhooks.md does not name {missing}"


DOCS = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "CHANGELOG.md", ROOT / "SECURITY.md"]
)


def _anchors(doc: Path) -> set[str]:
    """GitHub's ids for a Markdown file's headings: lower case, punctuation dropped, spaces as hyphens."""
    heads = [line.lstrip("#").strip() for line in doc.read_text().splitlines() if line.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_lead_to_files_and_headings(doc: Path) -> None:
    broken = []
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", doc.read_text()):
        if "://" in target:
            continue
        path = (doc.parent / target) if target else doc
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
            broken.append(f"{target}#{anchor}" if anchor else target)
    assert broken == []


def test_the_readme_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in (ROOT / "docs").glob("*.md") if f"(docs/{p.name}" not in readme]
    assert unlinked == []


def test_the_license_file_is_the_license_pyproject_names() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = " ".join((ROOT / "LICENSE").read_text().split())
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert text.startswith("Apache License Version 2.0, January 2004")


# ---- the docs name only commands, options, settings and files that exist --------------------------------

SHELL_BREAKS = {"&&", "||", "|", ";", "#", "\\"}


def _code(doc: Path) -> list[str]:
    """Every inline code span and fenced code line of a Markdown file, whitespace collapsed."""
    text = doc.read_text()
    fenced = re.findall(r"^ *```[^\n]*\n(.*?)^ *```", text, flags=re.S | re.M)
    prose = re.sub(r"^ *```[^\n]*\n.*?^ *```", "", text, flags=re.S | re.M)
    spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose)]
    return spans + [line for block in fenced for line in block.splitlines()]


def _parser() -> argparse.ArgumentParser:
    from gate.cli import build_parser

    return build_parser()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((dict(a.choices) for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def _command_problems(line: str, top: argparse.ArgumentParser) -> list[str]:
    """What in one ``upload-gate …`` command line the CLI does not have."""
    problems: list[str] = []
    line = line.replace("python -m gate ", "upload-gate ")
    tokens = line.split()
    for at in (i for i, w in enumerate(tokens) if w == "upload-gate"):
        words = tokens[at + 1 :]
        if words[:1] == ["upload-gate"]:
            continue  # a container's name (docker exec upload-gate upload-gate …)
        cut = next((i for i, w in enumerate(words) if w in SHELL_BREAKS or w.startswith("#")), len(words))
        words = words[:cut]
        if words[:1] == ["--env-file"]:
            words = words[2:]
        parser, path = top, []
        while words and words[0] in _subcommands(parser):
            parser = _subcommands(parser)[words[0]]
            path.append(words.pop(0))
        if not path:
            head = words[0] if words else ""
            if re.fullmatch(r"[a-z][a-z-]+", head):
                problems.append(f"no command {head!r}: {line}")
            elif head.startswith("--") and head not in _options(top):
                problems.append(f"no option {head}: {line}")
            continue
        known = _options(parser) | _options(top)
        for flag in (w.split("=")[0] for w in words if re.fullmatch(r"--[a-z][a-z-]*(=.*)?", w)):
            if flag not in known:
                problems.append(f"{' '.join(path)} has no {flag}: {line}")
    return problems


def test_every_command_and_option_in_the_docs_exists() -> None:
    top = _parser()
    problems = [f"{d.name}: {p}" for d in DOCS for line in _code(d) for p in _command_problems(line, top)]
    assert problems == []


def test_every_setting_in_the_docs_exists() -> None:
    from gate.settings import Settings

    known = {n for f in dataclasses.fields(Settings) for n in [f.metadata.get("env")] if n}
    assert {"GATE_LISTEN", "GATE_HMA_URL"} <= known  # the settings were found
    named = {n for d in DOCS for n in re.findall(r"\bGATE_[A-Z0-9_]*[A-Z0-9]\b", d.read_text())}
    named -= {"GATE_TEST"}  # tests' own variables
    missing = sorted(named - known)
    assert missing == [], f"the docs name settings gate/settings.py does not have: {missing}"


def test_every_file_the_docs_name_exists() -> None:
    named = {
        p.rstrip(".,:;")
        for d in DOCS
        for span in _code(d)
        if "kubectl" not in span  # deploy/NAME there is a Kubernetes Deployment
        for p in re.findall(r"(?<![\w/.-])((?:gate|tests|bench|deploy|config)/[\w./-]+)", span)
    }
    # What a run makes (bench/out/, tests/e2e/.pds/ and the like: git-ignored) is not in the tree.
    made = ("bench/out/", "tests/e2e/.")
    missing = sorted(p for p in named if not (ROOT / p).exists() and not p.startswith(made))
    assert missing == []
