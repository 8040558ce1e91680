"""The shipped alert rules (deploy/prometheus/upload-gate-rules.yml), checked by Prometheus's own promtool:
the file is valid, every alert fires on the series that should trigger it and stays silent on those that
should not (tests/deploy/alerts.test.yml), and every metric a rule reads is one the gate exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

import gate.metrics  # noqa: F401  (registers every metric)
from tests.support.prometheus import need

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "upload-gate-rules.yml"
TESTS = Path(__file__).with_name("alerts.test.yml")
INSTANCE = re.compile(r'instance="([^"]+)"')


def alerts() -> list[dict[str, Any]]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need("promtool"), *args], cwd=TESTS.parent, capture_output=True, text=True, check=False, timeout=120
    )


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_every_alert_fires_and_stays_silent_as_its_unit_tests_say() -> None:
    result = promtool("test", "rules", TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    """Silence is shown by an evaluation that expects no alert, or by a target in the input series that
    the firing evaluation does not list (the expected alerts are compared as a whole set)."""
    cases: dict[str, tuple[bool, bool]] = {}
    for group in yaml.safe_load(TESTS.read_text())["tests"]:
        instances = {m for s in group["input_series"] for m in INSTANCE.findall(s["series"])}
        for case in group["alert_rule_test"]:
            fired, silent = cases.get(case["alertname"], (False, False))
            expected = case["exp_alerts"]
            listed = {a["exp_labels"].get("instance") for a in expected}
            cases[case["alertname"]] = (
                fired or bool(expected),
                silent or not expected or bool(instances - listed),
            )
    names = [a["alert"] for a in alerts()]
    assert sorted(cases) == sorted(names), "alerts without unit tests, or tests of alerts that do not exist"
    assert {n: cases[n] for n in names} == {n: (True, True) for n in names}


def test_every_metric_a_rule_reads_is_exported_by_the_gate() -> None:
    exported = {s for m in REGISTRY.collect() if m.name.startswith("upload_gate_") for s in _names(m)}
    for alert in alerts():
        for name in re.findall(r"\bupload_gate_\w+", alert["expr"]):
            assert name in exported, f"{alert['alert']} reads {name}, which the gate does not export"


def _names(metric: Any) -> set[str]:
    """The series names of a metric family as Prometheus stores them."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(metric.type, ("",))
    return {metric.name + suffix for suffix in suffixes}
