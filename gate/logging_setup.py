"""How the gate's log lines look (``GATE_LOG_LEVEL``, ``GATE_LOG_FORMAT``), always on stderr.

``text`` is for people: ``TIME LEVEL [PID] LOGGER MESSAGE`` (the pid only under ``serve --workers``).
``json`` is for log shippers: one object per line with fixed keys — ``time`` (UTC, ISO 8601), ``level``,
``logger``, ``message``, ``pid``, ``worker`` (under ``--workers``) and ``exception`` (the traceback, when
there is one). Nothing else of a log record is ever serialised: a record's arguments and ``extra``
attributes could hold anything, so only the formatted message leaves.

Trust boundary: log lines go to whoever reads the journal or the log shipper. The gate never logs upload
bytes or credentials; as a second line of defence, anything shaped like a credential (``Bearer …``,
``DPoP …``, ``Basic …``, a JWT) is masked in every line, message and traceback alike.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from gate.workers import worker_index

_CREDENTIAL = re.compile(
    r"\b(?P<scheme>Bearer|DPoP|Basic)\s+[A-Za-z0-9._~+/=-]+"
    r"|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
)


def redact(text: str) -> str:
    """``text`` with every credential-shaped substring masked."""
    return _CREDENTIAL.sub(lambda m: f"{m['scheme']} <redacted>" if m["scheme"] else "<redacted>", text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        tag = " [%(process)d]" if worker_index() is not None else ""  # which worker wrote the line
        super().__init__(f"%(asctime)s %(levelname)s{tag} %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "pid": record.process,
        }
        worker = worker_index()
        if worker is not None:
            out["worker"] = worker
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exception"] = redact(record.exc_text)
        # ensure_ascii: a message can never smuggle a raw newline or control character into the stream.
        return json.dumps(out, ensure_ascii=True)


def _not_a_pool_floor_retry(record: logging.LogRecord) -> bool:
    # While Postgres is down, asyncpg warns with a full traceback at every retry of refilling a pool.
    # The gate reports the outage itself, once, where it matters (decision log, evidence, keeper).
    return not str(record.msg).startswith("Failed to restore the pool connection floor")


def configure_logging(level: str, fmt: str = "text") -> None:
    """Send every log line at ``level`` or above to stderr in ``fmt`` (settings validated both)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("asyncpg.pool").addFilter(_not_a_pool_floor_retry)
