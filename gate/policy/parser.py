"""Walk a parsed TOML tree into a ``Policy``, collecting every problem with its key path.

``gate.policy.load`` owns the file handling (bytes, UTF-8, TOML syntax) and raises the collected
problems as one ``PolicyError``; this module only knows the shape of a valid policy. It is a little over
300 lines because it is the whole grammar in one walk: every key is checked where it is read, and one
class keeps the one list every problem goes to (``[evidence]`` has its own module, called from here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gate.policy.evidence import parse_evidence
from gate.policy.firehose import parse_firehose
from gate.policy.model import Hashing, Policy, Response, Rule
from gate.policy.scan import parse_scan
from gate.signals import MatchSource, SignalType, supported_by
from gate.types import Verdict

DEFAULT_REJECT = Response(400, "UploadRejected", "This upload is not allowed on this server.")
DEFAULT_QUARANTINE = Response(400, "UploadHeld", "This upload is being held for review.")

TOP_KEYS = frozenset(
    {
        "on_unhashable",
        "on_unscannable",
        "on_matcher_error",
        "on_log_failure",
        "on_low_quality",
        "on_unscannable_by_type",
        "allowlist_banks",
        "hma_banks",
        "hashing",
        "responses",
        "rules",
        "evidence",
        "firehose",
        "scan",
    }
)
RULE_KEYS = frozenset({"name", "source", "banks", "signal_types", "max_distance", "action", "shadow"})
RESPONSE_KEYS = frozenset({"status", "error", "message"})
HASHING_KEYS = frozenset({"dihedral", "min_pdq_quality", "max_frames", "max_total_pixels"})
# Bounds of [hashing] max_frames and max_total_pixels: at least one frame, at most what a worker's
# deadline could ever decode (a sanity bound on typos, not a recommendation).
FRAME_LIMITS = {"max_frames": (1, 100_000), "max_total_pixels": (0, 100_000_000_000)}
XRPC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
MEDIA_GLOB = re.compile(r"^[a-z0-9*][a-z0-9.+*-]*/[a-z0-9*][a-z0-9.+*-]*$")


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


class PolicyParser:
    """Walks the TOML tree once, recording problems instead of stopping at the first."""

    def __init__(self, known_banks: Mapping[str, frozenset[str]]) -> None:
        self.known = known_banks
        self.problems: list[str] = []

    def err(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def unknown_keys(self, table: Mapping[str, Any], allowed: frozenset[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                self.err(f"{prefix}{key}", "unknown key")

    def verdict(self, raw: Mapping[str, Any], key: str, path: str, *, required: bool) -> Verdict | None:
        if key not in raw:
            if required:
                self.err(path, 'required (one of "forward", "quarantine", "reject")')
            return None
        value = raw[key]
        try:
            return Verdict(value)
        except ValueError:
            self.err(path, f'{_show(value)} is not one of "forward", "quarantine", "reject"')
            return None

    def names(self, value: object, path: str) -> list[str] | None:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.err(path, "expected a list of non-empty strings")
            return None
        return list(value)

    def check_banks(self, names: list[str], sources: frozenset[str], path: str) -> None:
        checked = [s for s in sorted(sources) if s in self.known]
        if len(checked) < len(sources):
            return  # a source we cannot see (HMA) is checked by its own validator hook
        for name in names:
            if not any(name in self.known[s] for s in checked):
                where = " or ".join(checked)
                self.err(path, f"unknown {where} bank {name!r}")

    def policy(self, raw: dict[str, Any], version: str) -> Policy | None:
        self.unknown_keys(raw, TOP_KEYS, "")
        on_unhashable = self.verdict(raw, "on_unhashable", "on_unhashable", required=True)
        on_unscannable = self.verdict(raw, "on_unscannable", "on_unscannable", required=True)
        on_matcher_error = self.verdict(raw, "on_matcher_error", "on_matcher_error", required=True)
        on_log_failure = self.verdict(raw, "on_log_failure", "on_log_failure", required=True)
        if on_log_failure is Verdict.QUARANTINE:
            self.err("on_log_failure", '"quarantine" is not allowed here: use "forward" or "reject"')
            on_log_failure = None
        on_low_quality = self.verdict(raw, "on_low_quality", "on_low_quality", required=False)
        by_type = self.by_type(raw.get("on_unscannable_by_type", {}))
        allowlist = self.allowlist(raw)
        hma_banks = self.hma_banks(raw)
        hashing = self.hashing(raw.get("hashing", {}))
        reject, quarantine = self.responses(raw.get("responses", {}))
        rules = self.rules(raw.get("rules", []), allowlist or frozenset())
        evidence = parse_evidence(raw.get("evidence", {}), self.err)
        firehose = parse_firehose(raw.get("firehose", {}), self.err, {r.name for r in rules})
        scan = parse_scan(raw["scan"], self.err) if "scan" in raw else None
        if (
            on_unhashable is None
            or on_unscannable is None
            or on_matcher_error is None
            or on_log_failure is None
            or self.problems
        ):
            return None
        return Policy(
            version=version,
            rules=rules,
            on_unhashable=on_unhashable,
            on_unscannable=on_unscannable,
            on_matcher_error=on_matcher_error,
            on_log_failure=on_log_failure,
            on_low_quality=on_low_quality,
            unscannable_by_type=by_type,
            allowlist_banks=allowlist or frozenset(),
            reject_response=reject,
            quarantine_response=quarantine,
            hashing=hashing,
            hma_banks=hma_banks,
            evidence=evidence,
            firehose=firehose,
            scan=scan,
        )

    def by_type(self, table: object) -> tuple[tuple[str, Verdict], ...]:
        path = "on_unscannable_by_type"
        if not isinstance(table, dict):
            self.err(path, 'expected a table such as { "video/*" = "quarantine" }')
            return ()
        out: list[tuple[str, Verdict]] = []
        for pattern, _ in table.items():
            key_path = f'{path}."{pattern}"'
            if not MEDIA_GLOB.match(pattern.lower()):
                self.err(key_path, "expected a media type glob such as video/* or image/svg+xml")
                continue
            verdict = self.verdict(table, pattern, key_path, required=True)
            if verdict is not None:
                out.append((pattern.lower(), verdict))
        return tuple(out)

    def allowlist(self, raw: Mapping[str, Any]) -> frozenset[str] | None:
        if "allowlist_banks" not in raw:
            return frozenset()
        names = self.names(raw["allowlist_banks"], "allowlist_banks")
        if names is None:
            return None
        # Allowlists are local files only: an HMA bank is someone else's list, never known-good.
        self.check_banks(names, frozenset({"local"}), "allowlist_banks")
        return frozenset(names)

    def hma_banks(self, raw: Mapping[str, Any]) -> frozenset[str] | None:
        if "hma_banks" not in raw:
            return None
        names = self.names(raw["hma_banks"], "hma_banks")
        if names is None:
            return None
        if not names:
            self.err("hma_banks", "an empty list would search no bank; leave the key out to search all")
        self.check_banks(names, frozenset({"hma"}), "hma_banks")
        return frozenset(names)

    def hashing(self, table: object) -> Hashing:
        if not isinstance(table, dict):
            self.err("hashing", "expected a table")
            return Hashing()
        self.unknown_keys(table, HASHING_KEYS, "hashing.")
        default = Hashing()
        dihedral = table.get("dihedral", default.dihedral)
        if not isinstance(dihedral, bool):
            self.err("hashing.dihedral", f"{_show(dihedral)} is not true or false")
            dihedral = default.dihedral
        quality = table.get("min_pdq_quality", default.min_pdq_quality)
        if not isinstance(quality, int) or isinstance(quality, bool) or not 0 <= quality <= 100:
            self.err("hashing.min_pdq_quality", f"{_show(quality)} is not an integer in 0–100")
            quality = default.min_pdq_quality
        frames = self.frame_limit(table, "max_frames", default.max_frames)
        pixels = self.frame_limit(table, "max_total_pixels", default.max_total_pixels)
        return Hashing(dihedral=dihedral, min_pdq_quality=quality, max_frames=frames, max_total_pixels=pixels)

    def frame_limit(self, table: Mapping[str, Any], key: str, default: int) -> int:
        low, high = FRAME_LIMITS[key]
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.err(f"hashing.{key}", f"{_show(value)} is not an integer in {low}–{high:_}")
            return default
        return value

    def responses(self, table: object) -> tuple[Response, Response]:
        if not isinstance(table, dict):
            self.err("responses", "expected a table with [responses.reject] and [responses.quarantine]")
            return DEFAULT_REJECT, DEFAULT_QUARANTINE
        self.unknown_keys(table, frozenset({"reject", "quarantine"}), "responses.")
        reject = self.response(table.get("reject", {}), "responses.reject", DEFAULT_REJECT)
        quarantine = self.response(table.get("quarantine", {}), "responses.quarantine", DEFAULT_QUARANTINE)
        return reject, quarantine

    def response(self, table: object, path: str, default: Response) -> Response:
        if not isinstance(table, dict):
            self.err(path, "expected a table with status, error and message")
            return default
        self.unknown_keys(table, RESPONSE_KEYS, f"{path}.")
        status = table.get("status", default.status)
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            self.err(f"{path}.status", f"{_show(status)} is not an HTTP error status in 400–599")
            status = default.status
        error = table.get("error", default.error)
        if not isinstance(error, str) or not XRPC_NAME.match(error):
            self.err(f"{path}.error", f"{_show(error)} is not an XRPC error name (letters and digits)")
            error = default.error
        message = table.get("message", default.message)
        if not isinstance(message, str) or not message.strip() or len(message) > 500:
            self.err(f"{path}.message", "expected a non-empty string of at most 500 characters")
            message = default.message
        return Response(status, error, message)

    def rules(self, items: object, allowlist: frozenset[str]) -> tuple[Rule, ...]:
        if not isinstance(items, list):
            self.err("rules", "expected [[rules]] tables")
            return ()
        seen: set[str] = set()
        out: list[Rule] = []
        for index, item in enumerate(items):
            rule = self.rule(item, f"rules[{index}]", allowlist)
            if rule is None:
                continue
            if rule.name in seen:
                self.err(f"rules[{index}].name", f"{rule.name!r} is used by an earlier rule")
            seen.add(rule.name)
            out.append(rule)
        return tuple(out)

    def rule(self, item: object, path: str, allowlist: frozenset[str]) -> Rule | None:
        if not isinstance(item, dict):
            self.err(path, "expected a table")
            return None
        before = len(self.problems)
        self.unknown_keys(item, RULE_KEYS, f"{path}.")
        name = item.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
            self.err(f"{path}.name", "required: 1–64 letters, digits, '_', '-', '.' or ':'")
            name = ""
        source = item.get("source")
        if source not in ("local", "hma", "any"):
            self.err(f"{path}.source", f'{_show(source)} is not one of "local", "hma", "any"')
            return None
        sources = frozenset(MatchSource) if source == "any" else frozenset({MatchSource(source)})
        action = self.verdict(item, "action", f"{path}.action", required=True)
        shadow = item.get("shadow", False)
        if not isinstance(shadow, bool):
            self.err(f"{path}.shadow", f"{_show(shadow)} is not true or false")
        banks = None
        if "banks" in item:
            names = self.names(item["banks"], f"{path}.banks")
            if names is not None:
                if not names:
                    self.err(f"{path}.banks", "an empty list selects nothing; leave the key out for any bank")
                for name_ in names:
                    if "local" in sources and name_ in allowlist:
                        self.err(f"{path}.banks", f"{name_!r} is an allowlist bank (known-good hashes)")
                self.check_banks(names, sources, f"{path}.banks")
                banks = frozenset(names)
        signals = self.signals(item, path, sources)
        possible = signals if signals is not None else supported_by(*sources)
        perceptual = any(not s.exact for s in possible)
        distance = item.get("max_distance")
        if distance is None:
            if perceptual:
                self.err(f"{path}.max_distance", "required when the rule can select pdq, phash or dhash")
            distance = 0
        elif not isinstance(distance, int) or isinstance(distance, bool):
            self.err(f"{path}.max_distance", f"{_show(distance)} is not an integer")
        elif not 0 <= distance <= 256:
            self.err(f"{path}.max_distance", f"{distance} is outside 0–256")
        if len(self.problems) > before or action is None:
            return None
        return Rule(
            name=name,
            action=action,
            sources=sources,
            banks=banks,
            signal_types=signals,
            max_distance=distance,
            shadow=shadow,
        )

    def signals(
        self, item: Mapping[str, Any], path: str, sources: frozenset[str]
    ) -> frozenset[SignalType] | None:
        if "signal_types" not in item:
            return None
        raw = item["signal_types"]
        key = f"{path}.signal_types"
        if not isinstance(raw, list) or not raw or not all(isinstance(v, str) for v in raw):
            self.err(key, 'expected a non-empty list such as ["pdq", "sha256"]')
            return None
        allowed = supported_by(*sources)
        out: set[SignalType] = set()
        for value in raw:
            try:
                signal = SignalType(value)
            except ValueError:
                self.err(key, f"unknown signal type {value!r}")
                continue
            if signal not in allowed:
                where = " or ".join(sorted(sources))
                self.err(key, f"{value!r} is not a signal type of {where} banks")
                continue
            package = signal.facts.package
            if not signal.facts.available():
                self.err(key, f"{value!r} needs the {package} package (pip install 'upload-gate[{package}]')")
                continue
            out.add(signal)
        return frozenset(out)
