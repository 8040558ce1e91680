"""Process settings from the environment (and an optional ``.env``-style file), validated loudly.

Only *how the process runs* lives here (where to listen, where the PDS is, limits, timeouts). The
operator's judgement — what to block and what to do on failure — lives in the policy file.

Each setting is one field with ``env(...)`` metadata: the variable name, a parser and a help text. A bad
value stops start-up with a message naming the variable, the value and what was expected.

(Over 300 lines on purpose: every setting is one declaration in one table — the one home for each
variable's name, parser, default and help, which gate.env.example and the docs are held to.)
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from yarl import URL

from gate.errors import ConfigError

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MiB = 1024 * 1024


class SettingsError(ConfigError, ValueError):
    """One or more settings are invalid; the message lists every problem."""


# ---- parsers: str -> value, raising ValueError with a human message ----------------------------------


def parse_hostport(raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:3100 (port 0 = any free port)")
    return host.strip("[]"), int(port)


def parse_url(raw: str) -> URL:
    url = URL(raw)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("expected an http(s) URL, e.g. http://127.0.0.1:3000")
    return url


def parse_optional_url(raw: str) -> URL | None:
    return parse_url(raw) if raw.strip() else None


def parse_size(raw: str) -> int:
    """Bytes, with an optional K/M/G suffix (binary: 1M = 1 MiB)."""
    text = raw.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1024, "M": MiB, "G": 1024 * MiB}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMG" else text
    if not number.isdigit() or int(number) <= 0:
        raise ValueError("expected a positive size in bytes, e.g. 104857600 or 100M")
    return int(number) * mult


def parse_rate(raw: str) -> int:
    """Bytes per second like a size (``1K``); ``0`` turns the limit off."""
    return 0 if raw.strip() == "0" else parse_size(raw)


def parse_positive_int(raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) <= 0:
        raise ValueError("expected a positive integer")
    return int(raw)


def parse_non_negative_int(raw: str) -> int:
    if not raw.strip().isdigit():
        raise ValueError("expected an integer ≥ 0")
    return int(raw)


def parse_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds, e.g. 2.5") from None
    if not value > 0:
        raise ValueError("expected a number of seconds > 0")
    return value


def parse_on_off(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("on", "off"):
        raise ValueError("expected on or off")
    return value == "on"


def parse_per_second(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number per second, e.g. 10 or 0.5") from None
    if not value > 0:
        raise ValueError("expected a number per second > 0")
    return value


def parse_networks(raw: str) -> tuple[IpNetwork, ...]:
    out: list[IpNetwork] = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or CIDR network") from None
    return tuple(out)


def parse_path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("expected a path")
    return Path(raw)


def parse_optional_hostport(raw: str) -> tuple[str, int] | None:
    return parse_hostport(raw) if raw.strip() else None


def parse_optional_path(raw: str) -> Path | None:
    return Path(raw) if raw.strip() else None


def parse_url_list(raw: str) -> tuple[URL, ...]:
    return tuple(parse_url(part.strip()) for part in raw.split(",") if part.strip())


def parse_optional_str(raw: str) -> str | None:
    return raw or None


def parse_optional_database_url(raw: str) -> str | None:
    """A libpq-style URL; empty means "use the embedded Postgres in GATE_DATA_DIR"."""
    text = raw.strip()
    if not text:
        return None
    if URL(text).scheme not in ("postgres", "postgresql"):
        raise ValueError(
            "expected postgresql://USER:PASSWORD@HOST:PORT/DB (or empty for the embedded Postgres)"
        )
    return text


def parse_optional_did(raw: str) -> str | None:
    text = raw.strip()
    if text and (not text.startswith("did:") or any(c.isspace() for c in text)):
        raise ValueError("expected a DID, e.g. did:web:pds.example.com")
    return text or None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


def parse_log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError("expected one of " + ", ".join(LOG_LEVELS))
    return level


def parse_log_format(raw: str) -> str:
    fmt = raw.strip().lower()
    if fmt not in LOG_FORMATS:
        raise ValueError("expected text or json")
    return fmt


def env(name: str, parser: Callable[[str], Any], default: str, help: str, secret: bool = False) -> Any:
    """Declare a setting: its variable, parser, default (as the string an operator would write)."""
    return field(metadata={"env": name, "parser": parser, "default": default, "help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    listen: tuple[str, int] = env("GATE_LISTEN", parse_hostport, "127.0.0.1:3100", "public listener")
    upstream: URL = env("GATE_UPSTREAM", parse_url, "http://127.0.0.1:3000", "the PDS")
    max_upload_bytes: int = env(
        "GATE_MAX_UPLOAD_BYTES", parse_size, "104857600", "largest upload, before and after decoding"
    )
    memory_budget_bytes: int = env(
        "GATE_MEMORY_BUDGET_BYTES",
        parse_size,
        "512M",
        "upload bytes held at once, a hashing worker's copy and evidence being written included; past it → 503;"
        " ≥ 2 × GATE_MAX_UPLOAD_BYTES",
    )
    body_idle_timeout: float = env(
        "GATE_BODY_IDLE_TIMEOUT",
        parse_seconds,
        "15",
        "an upload body that sends nothing for this many seconds is cut with 408",
    )
    body_min_rate: int = env(
        "GATE_BODY_MIN_RATE",
        parse_rate,
        "1K",
        "bytes/s an upload body must keep up (past GATE_BODY_RATE_GRACE behind it → 408); 0 = off",
    )
    body_rate_grace: float = env(
        "GATE_BODY_RATE_GRACE",
        parse_seconds,
        "30",
        "seconds an upload body may fall behind GATE_BODY_MIN_RATE (at the start, or in a stall)",
    )
    header_timeout: float = env(
        "GATE_HEADER_TIMEOUT",
        parse_seconds,
        "10",
        "a request head (line and headers) must arrive within this many seconds of the connection "
        "or of its first byte; else the connection is dropped (slowloris)",
    )
    max_uploads_per_ip: int = env(
        "GATE_MAX_UPLOADS_PER_IP",
        parse_non_negative_int,
        "16",
        "concurrent uploads per client address (IPv6: per /64) per gate process; past it 429; 0 = no limit",
    )
    drain_timeout: float = env(
        "GATE_DRAIN_TIMEOUT",
        parse_seconds,
        "10",
        "on SIGTERM, seconds upload bodies still arriving may take to finish; then 503 + Retry-After",
    )
    metrics_listen: tuple[str, int] = env(
        "GATE_METRICS_LISTEN", parse_hostport, "127.0.0.1:9464", "metrics, health and admin listener"
    )
    data_dir: Path = env("GATE_DATA_DIR", parse_path, "./var", "embedded Postgres, spool")
    policy_path: Path = env("GATE_POLICY", parse_path, "config/policy.toml", "the policy file")
    banks_dir: Path = env("GATE_BANKS_DIR", parse_path, "config/banks", "local hash banks (*.csv)")
    bank_cache_path: Path | None = env(
        "GATE_BANK_CACHE",
        parse_optional_path,
        "",
        "large local banks indexed once per content and mapped from here; empty = GATE_DATA_DIR/bank-cache",
    )
    trusted_proxies: tuple[IpNetwork, ...] = env(
        "GATE_TRUSTED_PROXIES",
        parse_networks,
        "127.0.0.1/32,::1/128",
        "peers whose X-Forwarded-For/-Proto are kept (comma-separated CIDRs)",
    )
    upstream_connect_timeout: float = env(
        "GATE_UPSTREAM_CONNECT_TIMEOUT", parse_seconds, "5", "connecting to the PDS"
    )
    upstream_timeout: float = env(
        "GATE_UPSTREAM_TIMEOUT", parse_seconds, "60", "PDS answer (response headers) deadline"
    )
    lean_passthrough: bool = env(
        "GATE_LEAN_PASSTHROUGH",
        parse_on_off,
        "on",
        "plain GETs to a plain-HTTP PDS read and relayed by the gate itself (gate.proxy.front); off = "
        "every request through aiohttp's server and client (the same bytes, more CPU)",
    )
    hash_workers: int = env(
        "GATE_HASH_WORKERS", parse_non_negative_int, "0", "image hashing processes; 0 = one per core"
    )
    max_image_pixels: int = env(
        "GATE_MAX_IMAGE_PIXELS", parse_positive_int, "89478485", "decompression-bomb limit (Pillow's)"
    )
    verdict_cache_size: int = env(
        "GATE_VERDICT_CACHE_SIZE", parse_non_negative_int, "4096", "repeat uploads reuse verdicts"
    )
    verdict_cache_ttl: float = env(
        "GATE_VERDICT_CACHE_TTL", parse_seconds, "120", "seconds a cached verdict stays valid"
    )
    reload_interval: float = env(
        "GATE_RELOAD_INTERVAL", parse_seconds, "2", "how often policy and bank files are checked"
    )
    log_level: str = env(
        "GATE_LOG_LEVEL", parse_log_level, "INFO", "least severe log lines written: " + ", ".join(LOG_LEVELS)
    )
    log_format: str = env(
        "GATE_LOG_FORMAT", parse_log_format, "text", "text (one line each) or json (one object per line)"
    )
    hma_url: URL | None = env(
        "GATE_HMA_URL", parse_optional_url, "", "HMA (OpenMediaMatch) base URL; unset = no HMA matcher"
    )
    hma_connect_timeout: float = env(
        "GATE_HMA_CONNECT_TIMEOUT", parse_seconds, "0.5", "connecting to HMA, per request"
    )
    hma_timeout: float = env("GATE_HMA_TIMEOUT", parse_seconds, "2", "one HMA lookup, total")
    hma_deadline: float = env(
        "GATE_HMA_DEADLINE", parse_seconds, "3", "all HMA lookups of one upload, retries included"
    )
    hma_retries: int = env(
        "GATE_HMA_RETRIES", parse_non_negative_int, "1", "retries of a lookup whose connection failed"
    )
    hma_concurrency: int = env(
        "GATE_HMA_CONCURRENCY", parse_positive_int, "16", "HMA lookups in flight at once, whole gate"
    )
    hma_cache_size: int = env(
        "GATE_HMA_CACHE_SIZE", parse_non_negative_int, "20000", "cached HMA answers; 0 = no cache"
    )
    hma_cache_ttl: float = env(
        "GATE_HMA_CACHE_TTL", parse_seconds, "30", "seconds a cached HMA answer stays valid"
    )
    hma_breaker_failures: int = env(
        "GATE_HMA_BREAKER_FAILURES",
        parse_positive_int,
        "3",
        "consecutive uploads whose HMA lookups failed before the breaker opens",
    )
    hma_breaker_reset: float = env(
        "GATE_HMA_BREAKER_RESET", parse_seconds, "10", "seconds the breaker stays open before a probe"
    )
    hma_status_interval: float = env(
        "GATE_HMA_STATUS_INTERVAL", parse_seconds, "5", "how often HMA's GET /status is polled"
    )
    # ---- decision log (gate/store) ----
    database_url: str | None = env(
        "DATABASE_URL",
        parse_optional_database_url,
        "",
        "Postgres for the decision log; empty = embedded Postgres in GATE_DATA_DIR/postgres",
        secret=True,
    )
    db_pool_min: int = env("GATE_DB_POOL_MIN", parse_positive_int, "1", "asyncpg pool: connections kept open")
    db_pool_max: int = env(
        "GATE_DB_POOL_MAX",
        parse_positive_int,
        "10",
        "asyncpg pool (one per process, every part): most connections",
    )
    db_connect_timeout: float = env(
        "GATE_DB_CONNECT_TIMEOUT", parse_seconds, "5", "connecting to Postgres (and embedded start-up waits)"
    )
    db_command_timeout: float = env(
        "GATE_DB_COMMAND_TIMEOUT", parse_seconds, "10", "one batch insert; slower counts as an outage → spool"
    )
    decision_queue_size: int = env(
        "GATE_DECISION_QUEUE_SIZE",
        parse_positive_int,
        "10000",
        "decisions waiting for the writer; full → not accepting",
    )
    decision_batch_size: int = env(
        "GATE_DECISION_BATCH_SIZE", parse_positive_int, "500", "most rows per insert"
    )
    decision_flush_interval: float = env(
        "GATE_DECISION_FLUSH_INTERVAL",
        parse_seconds,
        "0.2",
        "longest a decision waits for its batch to fill before the writer inserts",
    )
    decision_retry_interval: float = env(
        "GATE_DECISION_RETRY_INTERVAL", parse_seconds, "1", "how often an unreachable Postgres is retried"
    )
    decision_drain_timeout: float = env(
        "GATE_DECISION_DRAIN_TIMEOUT", parse_seconds, "10", "shutdown: time to write queued decisions"
    )
    spool_max_bytes: int = env(
        "GATE_SPOOL_MAX_BYTES", parse_size, "1G", "outage spool limit; past it the spool counts as failed"
    )
    # ---- evidence (gate/quarantine) ----
    evidence_keys_file: Path | None = env(
        "GATE_EVIDENCE_KEYS_FILE",
        parse_optional_path,
        "",
        "evidence keyring (JSON, mode 0600) from `upload-gate keys init`; needed when the policy quarantines",
    )
    evidence_key: str | None = env(
        "GATE_EVIDENCE_KEY",
        parse_optional_str,
        "",
        "alternative to the keyring file: one base64 AES-256 key (no rotation)",
        secret=True,
    )
    evidence_purge_interval: float = env(
        "GATE_EVIDENCE_PURGE_INTERVAL", parse_seconds, "3600", "how often expired evidence is purged"
    )
    withheld_refresh_interval: float = env(
        "GATE_WITHHELD_REFRESH_INTERVAL",
        parse_seconds,
        "10",
        "how often the set of blocked blobs (withheld from getBlob) is re-read from Postgres",
    )

    # ---- review queue, admin API, PDS actions, notifications (gate/admin, gate/quarantine, gate/notify) ----
    admin_listen: tuple[str, int] | None = env(
        "GATE_ADMIN_LISTEN",
        parse_optional_hostport,
        "",
        "admin API + review page listener; empty = on GATE_METRICS_LISTEN (never the public one)",
    )
    admin_tokens_path: Path | None = env(
        "GATE_ADMIN_TOKENS",
        parse_optional_path,
        "",
        "an old reviewer/admin tokens file, imported into Postgres at start-up and renamed *.imported;"
        " empty = GATE_DATA_DIR/admin-tokens",
    )
    reveal_seconds: float = env(
        "GATE_REVEAL_SECONDS", parse_seconds, "60", "how long a reviewer's reveal link shows the original"
    )
    api_rate: float = env(
        "GATE_API_RATE",
        parse_per_second,
        "10",
        "hash/match/scan API (/api/v1) requests per second per token, sustained; past it 429",
    )
    api_burst: int = env(
        "GATE_API_BURST",
        parse_positive_int,
        "20",
        "API requests a token may make at once above GATE_API_RATE",
    )
    # ---- the PDS's credentials, checked before a body is read (gate/auth/offline.py) ----
    pds_env_file: Path | None = env(
        "GATE_PDS_ENV_FILE",
        parse_optional_path,
        "",
        "the PDS's env file (the installer's /pds/pds.env): PDS_JWT_SECRET, PDS_HOSTNAME, PDS_PORT and "
        "PDS_SERVICE_DID are read from it unless set below",
    )
    pds_jwt_secret: str | None = env(
        "GATE_PDS_JWT_SECRET",
        parse_optional_str,
        "",
        "the PDS's PDS_JWT_SECRET: upload tokens are checked before the body is read; empty = the PDS "
        "alone judges them (after the gate has read the body)",
        secret=True,
    )
    pds_service_did: str | None = env(
        "GATE_PDS_SERVICE_DID",
        parse_optional_did,
        "",
        "the PDS's service DID (tokens' aud); empty = from GATE_PDS_ENV_FILE, else not checked offline",
    )
    pds_public_url: URL | None = env(
        "GATE_PDS_PUBLIC_URL",
        parse_optional_url,
        "",
        "the PDS's public URL (OAuth issuer, DPoP htu origin); empty = from GATE_PDS_ENV_FILE, else not "
        "checked offline",
    )
    pds_admin_password: str | None = env(
        "GATE_PDS_ADMIN_PASSWORD",
        parse_optional_str,
        "",
        "the PDS's PDS_ADMIN_PASSWORD: enables takedowns on confirm; empty = no PDS actions",
        secret=True,
    )
    pds_admin_url: URL | None = env(
        "GATE_PDS_ADMIN_URL", parse_optional_url, "", "where the PDS admin API is; empty = GATE_UPSTREAM"
    )
    takedown_daily_cap: int = env(
        "GATE_TAKEDOWN_DAILY_CAP",
        parse_non_negative_int,
        "10",
        "takedowns per UTC day, whole gate (every replica); the next one is refused; 0 = none",
    )
    retro_window_days: int = env(
        "GATE_RETRO_WINDOW_DAYS",
        parse_non_negative_int,
        "0",
        "after a local bank gains hashes, stored decisions of this many days are re-matched (retro-hunt); "
        "0 = the whole decision log",
    )
    retro_hma_window_days: int = env(
        "GATE_RETRO_HMA_WINDOW_DAYS",
        parse_positive_int,
        "30",
        "when HMA's index is rebuilt, the stored PDQ hashes of this many days are looked up again",
    )
    retro_hma_rate: float = env(
        "GATE_RETRO_HMA_RATE",
        parse_seconds,
        "10",
        "lookups per second those re-lookups may send HMA (uploads' own lookups are not counted)",
    )
    retro_hma_retry_interval: float = env(
        "GATE_RETRO_HMA_RETRY_INTERVAL",
        parse_seconds,
        "60",
        "seconds a process waits to try an HMA re-lookup pass again after its pass stopped or failed (at "
        "once when HMA's index changes again): a failing HMA gets one lookup per interval, not a window",
    )
    webhook_url: URL | None = env(
        "GATE_WEBHOOK_URL", parse_optional_url, "", "POST quarantine/reject/review events here; empty = off"
    )
    webhook_secret: str | None = env(
        "GATE_WEBHOOK_SECRET",
        parse_optional_str,
        "",
        "HMAC-SHA256 key for the X-Gate-Signature header (required with GATE_WEBHOOK_URL)",
        secret=True,
    )
    webhook_attempts: int = env(
        "GATE_WEBHOOK_ATTEMPTS", parse_positive_int, "5", "deliveries tried per event before dead-lettering"
    )
    webhook_backoff: float = env(
        "GATE_WEBHOOK_BACKOFF", parse_seconds, "1", "first retry delay; doubles per attempt (capped at 60 s)"
    )
    webhook_timeout: float = env("GATE_WEBHOOK_TIMEOUT", parse_seconds, "5", "one webhook delivery")
    webhook_queue_size: int = env(
        "GATE_WEBHOOK_QUEUE_SIZE", parse_positive_int, "1000", "events waiting; when full, new ones are dead"
    )

    # ---- the labeler (gate/labels) ----
    labeler_did: str | None = env(
        "GATE_LABELER_DID",
        parse_optional_did,
        "",
        "the labeler account's DID (every label's src); empty = no labeler: no labels are made or served",
    )
    labeler_key_file: Path | None = env(
        "GATE_LABELER_KEY_FILE",
        parse_optional_path,
        "",
        "the labeler's secp256k1 key (JSON, mode 0600) from `upload-gate labeler init`; the process that "
        "serves labels needs it",
    )
    labeler_key: str | None = env(
        "GATE_LABELER_KEY",
        parse_optional_str,
        "",
        "alternative to the key file: the private key as 64 hex digits",
        secret=True,
    )
    labels_poll_interval: float = env(
        "GATE_LABELS_POLL_INTERVAL",
        parse_seconds,
        "1",
        "how often the labels log is checked for labels to send subscribeLabels subscribers",
    )
    labels_max_subscribers: int = env(
        "GATE_LABELS_MAX_SUBSCRIBERS",
        parse_positive_int,
        "100",
        "subscribeLabels websockets open at once per process; past it 503",
    )

    # ---- the firehose watcher (gate/firehose, `upload-gate watch`) ----
    plc_url: URL = env(
        "GATE_PLC_URL",
        parse_url,
        "https://plc.directory",
        "the PLC directory did:plc authors are resolved with",
    )
    firehose_workers: int = env(
        "GATE_FIREHOSE_WORKERS", parse_positive_int, "8", "commits judged at once by `upload-gate watch`"
    )
    firehose_queue_size: int = env(
        "GATE_FIREHOSE_QUEUE_SIZE",
        parse_positive_int,
        "256",
        "commits read and waiting for a worker; when full the firehose is read no further (backpressure)",
    )
    firehose_fetch_timeout: float = env(
        "GATE_FIREHOSE_FETCH_TIMEOUT", parse_seconds, "30", "one getBlob from an author's PDS, total"
    )
    firehose_pds_origins: tuple[URL, ...] = env(
        "GATE_FIREHOSE_PDS_ORIGINS",
        parse_url_list,
        "",
        "PDS origins blobs may be fetched from over plain http or on private addresses (comma-separated); "
        "GATE_UPSTREAM always may; any other must be public https",
    )
    report_service_url: URL | None = env(
        "GATE_REPORT_SERVICE_URL",
        parse_optional_url,
        "",
        "a moderation service `upload-gate watch` sends com.atproto.moderation.createReport to for the "
        "rules whose [[firehose.labels]] say report = true (signed as the labeler); empty = no reports",
    )
    report_service_did: str | None = env(
        "GATE_REPORT_SERVICE_DID",
        parse_optional_did,
        "",
        "that service's DID (the audience of the labeler's service-auth token)",
    )
    watch_metrics_listen: tuple[str, int] | None = env(
        "GATE_WATCH_METRICS_LISTEN",
        parse_optional_hostport,
        "127.0.0.1:9465",
        "`upload-gate watch`'s private listener (/metrics, /healthz, /readyz); empty = none",
    )

    @property
    def bank_cache_dir(self) -> Path:
        return self.bank_cache_path or self.data_dir / "bank-cache"

    @property
    def admin_tokens_file(self) -> Path:
        return self.admin_tokens_path or self.data_dir / "admin-tokens"

    @property
    def pds_admin_base(self) -> URL:
        return self.pds_admin_url or self.upstream

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``) over an optional ``.env`` file."""
        values: dict[str, str] = {}
        if env_file is not None:
            values.update(read_env_file(env_file))
        values.update(os.environ if environ is None else environ)
        problems: list[str] = []
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            meta = f.metadata
            raw = values.get(meta["env"], meta["default"])
            try:
                kwargs[f.name] = meta["parser"](raw)
            except ValueError as exc:
                shown = "<hidden>" if meta["secret"] else repr(raw)
                problems.append(f"{meta['env']}={shown}: {exc}")
        # An upload is held twice while it is hashed (the gate's copy and its hashing worker's, both
        # counted: gate/proxy/budget.py); a smaller budget would refuse the largest uploads every time.
        if not problems and kwargs["memory_budget_bytes"] < 2 * kwargs["max_upload_bytes"]:
            problems.append(
                "GATE_MEMORY_BUDGET_BYTES must be at least twice GATE_MAX_UPLOAD_BYTES"
                " (an upload is held twice while it is hashed)"
            )
        if not problems and kwargs["db_pool_min"] > kwargs["db_pool_max"]:
            problems.append("GATE_DB_POOL_MIN must not exceed GATE_DB_POOL_MAX")
        if not problems and kwargs["webhook_url"] is not None and not kwargs["webhook_secret"]:
            problems.append("GATE_WEBHOOK_URL needs GATE_WEBHOOK_SECRET: webhooks are always signed")
        if not problems and (kwargs["report_service_url"] is None) != (kwargs["report_service_did"] is None):
            problems.append("GATE_REPORT_SERVICE_URL and GATE_REPORT_SERVICE_DID go together")
        if not problems and kwargs["report_service_url"] is not None and kwargs["labeler_did"] is None:
            problems.append(
                "GATE_REPORT_SERVICE_URL needs GATE_LABELER_DID: reports are signed as the labeler"
            )
        if not problems and kwargs["pds_env_file"] is not None:
            try:
                kwargs.update(_from_pds_env(kwargs))
            except SettingsError as exc:
                problems.append(f"GATE_PDS_ENV_FILE: {exc}")
        if problems:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
        return cls(**kwargs)


def _from_pds_env(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The PDS's secret, service DID and public URL from its own env file, derived as the PDS derives
    them (@atproto/pds config.ts: hostname "localhost" → http://localhost:PORT, else https://HOSTNAME;
    service DID PDS_SERVICE_DID, else did:web:HOSTNAME). A GATE_PDS_* value set explicitly wins."""
    pds = read_env_file(kwargs["pds_env_file"])
    hostname = pds.get("PDS_HOSTNAME") or "localhost"
    port = pds.get("PDS_PORT") or "2583"
    try:
        derived: dict[str, Any] = {
            "pds_jwt_secret": pds.get("PDS_JWT_SECRET") or None,
            "pds_service_did": parse_optional_did(pds.get("PDS_SERVICE_DID") or f"did:web:{hostname}"),
            "pds_public_url": parse_url(
                f"http://localhost:{port}" if hostname == "localhost" else f"https://{hostname}"
            ),
        }
    except ValueError as exc:
        raise SettingsError(f"{kwargs['pds_env_file']}: {exc}") from None
    return {k: v for k, v in derived.items() if kwargs[k] is None}


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines; ``#`` comments, blank lines, optional quotes and ``export``."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read env file {path}: {exc.strerror}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.removeprefix("export ").partition("=")
        if not sep or not key.strip().isidentifier():
            raise SettingsError(f"{path}:{lineno}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out
