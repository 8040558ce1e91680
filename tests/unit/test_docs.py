"""The docs keep up with the code: every error class, readiness check and detail, and start-up refusal
has its troubleshooting entry, and every link between the README and docs/ leads to a file."""

from __future__ import annotations

import ast
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
    """What readiness checks (functions answering ``tuple[bool, str]``) return or build as their detail."""
    found: set[str] = set()
    for tree in _sources().values():
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


def test_every_readiness_check_has_a_section() -> None:
    checks = _readiness_checks()
    assert {"policy", "decision_log", "evidence"} <= checks  # the parse found the registrations
    missing = sorted(name for name in checks if not any(f"### `{name}`" in h for h in HEADINGS))
    assert missing == [], f"docs/troubleshooting.md has no section for the /readyz checks {missing}"


def test_every_readiness_detail_has_an_entry() -> None:
    details = _readiness_details()
    assert "decision log not accepting" in details  # the parse found the checks
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
        if isinstance(k, ast.Constant)
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

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    text = " ".join((ROOT / "LICENSE").read_text().split())
    assert declared == "Apache-2.0" and text.startswith("Apache License Version 2.0, January 2004")
