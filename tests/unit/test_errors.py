"""The error tree: every exception the gate defines is a GateError, on the branch its docstring draws."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import gate
from gate import errors
from gate.errors import GateError, XrpcError


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(gate.__path__, "gate."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                assert name not in found or found[name] is obj, f"two exceptions named {name}"
                found[name] = obj
    return found


def _drawn() -> dict[str, str]:
    """Each class the docstring draws → its parent in the drawing (the branch its ``──`` hangs from)."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = [(0, "GateError")]
    for line in (errors.__doc__ or "").splitlines():
        m = re.search(r"[├└]── ([A-Za-z]+)", line)
        if m is None:
            continue
        depth = m.start()
        while stack[-1][0] >= depth:
            stack.pop()
        parents[m.group(1)] = stack[-1][1]
        stack.append((depth, m.group(1)))
    return parents


def test_every_exception_the_gate_defines_is_a_gate_error() -> None:
    classes = _exception_classes()
    outside = sorted(n for n, c in classes.items() if not issubclass(c, GateError))
    assert outside == []


def test_the_docstring_draws_the_tree_as_it_is() -> None:
    classes = _exception_classes()
    drawn = _drawn()
    assert set(drawn) | {"GateError"} == set(classes), "the drawing and the code name different classes"
    for name, parent in drawn.items():
        assert classes[parent] in classes[name].__bases__, f"{name} is drawn under {parent}"


def test_only_answers_carry_a_client_message() -> None:
    # The middleware answers XrpcErrors with their message; other GateErrors may carry internals.
    classes = _exception_classes()
    with_body = sorted(n for n, c in classes.items() if hasattr(c, "body"))
    assert all(issubclass(classes[n], XrpcError) for n in with_body)
