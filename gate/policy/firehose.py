"""The policy's ``[firehose]`` table: ``upload-gate watch``'s lag limit and what it does past it, whether
it takes down what a rule rejects on the gate's own PDS, and ``[[firehose.labels]]``, the label values each rule's matches publish as the gate's labeler (and whether
they are reported to a moderation service).

See ``config/policy.toml`` for each key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from gate.policy.model import Firehose, RuleLabels

FIREHOSE_KEYS = frozenset({"max_lag_seconds", "on_lag", "labels", "takedown"})
LABEL_KEYS = frozenset({"rule", "values", "account", "report"})
LAG_CHOICES = ("pause", "skip")
# A label value as app.bsky.labeler.service declares one: lower-case letters and hyphens.
LABEL_VALUE = re.compile(r"^[a-z][a-z-]{0,99}$")


def parse_firehose(table: object, err: Callable[[str, str], None], rules: Collection[str]) -> Firehose:
    """``err(key_path, message)`` records a problem; ``rules``: the policy's rule names."""
    default = Firehose()
    if not isinstance(table, dict):
        err("firehose", "expected a table")
        return default
    for key in table:
        if key not in FIREHOSE_KEYS:
            err(f"firehose.{key}", "unknown key")
    lag = table.get("max_lag_seconds", default.max_lag_seconds)
    if not isinstance(lag, int) or isinstance(lag, bool) or not 1 <= lag <= 7 * 86400:
        err("firehose.max_lag_seconds", f"{lag!r} is not a number of seconds in 1–604800")
        lag = default.max_lag_seconds
    on_lag = table.get("on_lag", default.on_lag)
    if on_lag not in LAG_CHOICES:
        err("firehose.on_lag", f'{on_lag!r} is not one of "pause", "skip"')
        on_lag = default.on_lag
    takedown = table.get("takedown", default.takedown)
    if not isinstance(takedown, bool):
        err("firehose.takedown", f"{takedown!r} is not true or false")
        takedown = default.takedown
    items = table.get("labels", [])
    if not isinstance(items, list):
        err("firehose.labels", "expected [[firehose.labels]] tables")
        items = []
    labels: list[RuleLabels] = []
    for i, item in enumerate(items):
        path = f"firehose.labels[{i}]"
        if not isinstance(item, dict):
            err(path, "expected a table")
            continue
        for key in item:
            if key not in LABEL_KEYS:
                err(f"{path}.{key}", "unknown key")
        rule, values, account = item.get("rule"), item.get("values"), item.get("account", False)
        if rule not in rules:
            err(f"{path}.rule", f"{rule!r} is not the name of a rule in this policy")
            continue
        if any(r.rule == rule for r in labels):
            err(f"{path}.rule", f"{rule!r} has labels already")
            continue
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and LABEL_VALUE.match(v) for v in values)
        ):
            err(
                f"{path}.values", "expected a non-empty list of label values (lower-case letters and hyphens)"
            )
            continue
        if not isinstance(account, bool):
            err(f"{path}.account", f"{account!r} is not true or false")
            continue
        report = item.get("report", False)
        if not isinstance(report, bool):
            err(f"{path}.report", f"{report!r} is not true or false")
            continue
        labels.append(RuleLabels(str(rule), tuple(dict.fromkeys(values)), account, report))
    return Firehose(max_lag_seconds=lag, on_lag=on_lag, labels=tuple(labels), takedown=takedown)
