"""Logging: one format, and a filter that scrubs anything that looks like a secret."""

from __future__ import annotations

import logging
import re

from connect_app.config import Settings

_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization:\s*)(\S+\s+)?\S+"),
    re.compile(r"(?i)([?&]jwt=)[^&\s]+"),
    re.compile(r"(?i)(\"?(?:sharedSecret|token|password|secret)\"?\s*[:=]\s*\"?)[^\"\s,}]+"),
    re.compile(r"(https?://)[^/\s:@]+:[^/\s@]+@"),
]


def scrub(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
    return text


class ScrubSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure(settings: Settings) -> None:
    root = logging.getLogger()
    if not any(isinstance(f, ScrubSecretsFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(ScrubSecretsFilter())
        root.addHandler(handler)
    root.setLevel(settings.log_level)
