"""Each request, once answered: its latency into the ``/metrics`` histogram and one access
log line (``connect_app.access``: method, path without query string, endpoint, status,
duration). The query string is left out on purpose: Jira puts its JWT there (``?jwt=``);
a route's secret-like parts (the webhook URL's token) are redacted.
Health checks and scrapes are logged at DEBUG so load balancers do not flood the log.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from connect_app.metrics.http import observe_request

log = logging.getLogger("connect_app.access")

QUIET_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "metrics.metrics"})
_STARTED_KEY = "_gcj_request_started"
_SECRET_ARGS = ("token", "secret", "password")


def _loggable_path() -> str:
    """The path, with a route's secret-like parts (``/webhooks/<id>/<token>``) redacted."""
    path = request.path
    for name, value in (request.view_args or {}).items():
        text = str(value)
        if text and any(word in name.lower() for word in _SECRET_ARGS):
            path = path.replace(text, "[redacted]")
    return path


def _start() -> None:
    setattr(g, _STARTED_KEY, time.perf_counter())


def _finish(response: Response) -> Response:
    started: float | None = g.get(_STARTED_KEY)
    if started is None:
        return response
    seconds = time.perf_counter() - started
    rule = request.url_rule
    endpoint = rule.endpoint if rule is not None else None
    observe_request(endpoint, request.method, response.status_code, seconds)
    level = logging.DEBUG if endpoint in QUIET_ENDPOINTS else logging.INFO
    if log.isEnabledFor(level):
        path = _loggable_path()
        log.log(
            level,
            "%s %s %d %.1fms",
            request.method,
            path,
            response.status_code,
            seconds * 1000,
            extra={
                "fields": {
                    "method": request.method,
                    "path": path,
                    "endpoint": endpoint or "unmatched",
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                }
            },
        )
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
