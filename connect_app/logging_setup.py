"""Logging: one handler on the root logger, text or JSON lines, and secrets scrubbed.

``LOG_FORMAT=json`` (the default in production) writes one JSON object per line::

    {"time": "2025-01-31T12:00:00.123Z", "level": "INFO", "logger": "connect_app.access",
     "message": "GET /api/issues/ABC-1 200 12.3ms", "request_id": "…", "tenant_id": 7, …}

with ``request_id`` (web), ``job_id``/``job_func`` (worker) and ``tenant_id`` when known
(:mod:`connect_app.log_context`), the ``fields`` given as ``extra={"fields": {...}}``,
and ``exception`` text when there is one. Everything written, message and traceback
alike, goes through :func:`scrub`, in either format.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connect_app import log_context
from connect_app.config import Settings

_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization:\s*)(\S+\s+)?\S+"),
    re.compile(r"(?i)([?&]jwt=)[^&\s]+"),
    re.compile(r"(?i)(\"?(?:sharedSecret|token|password|secret)\"?\s*[:=]\s*\"?)[^\"\s,}]+"),
    re.compile(r"(https?://)[^/\s:@]+:[^/\s@]+@"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"),
    # Well-known token shapes, wherever they appear: GitHub, GitLab, JWTs.
    re.compile(r"()\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,})"),
    re.compile(r"()\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+"),
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def scrub(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
    return text


class ScrubSecretsFilter(logging.Filter):
    """Scrubs the message of every record before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class _ScrubbingFormatter(logging.Formatter):
    """Tracebacks are scrubbed before ``logging`` caches them on the record (``exc_text``)."""

    def formatException(self, ei: Any) -> str:
        return scrub(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return scrub(super().formatStack(stack_info))


class TextFormatter(_ScrubbingFormatter):
    """The classic one-line format, ids appended, the whole output scrubbed (tracebacks too)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = log_context.current_fields()
        if ids:
            first, newline, rest = text.partition("\n")
            suffix = " [" + " ".join(f"{k}={v}" for k, v in ids.items()) + "]"
            text = first + suffix + newline + rest
        return scrub(text)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(str(value))


class JsonFormatter(_ScrubbingFormatter):
    """One JSON object per line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        entry.update(log_context.current_fields())
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                entry.setdefault(str(key), _json_safe(value))
        if record.exc_info:
            # exc_text may have been cached, unscrubbed, by another handler's formatter
            entry["exception"] = scrub(record.exc_text or self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = scrub(record.exc_text)
        if record.stack_info:
            entry["stack"] = scrub(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class AppLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The app's own handler on the root logger (stderr), so ``configure`` finds it again."""


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(settings: Settings) -> None:
    """Install (once) or update the root handler; safe to call for every app built."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, AppLogHandler)), None)
    if handler is None:
        handler = AppLogHandler()
        handler.addFilter(ScrubSecretsFilter())
        root.addHandler(handler)
    handler.setFormatter(formatter_for(settings.log_format))
    root.setLevel(settings.log_level)
