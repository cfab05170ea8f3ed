"""``GET /metrics``: Prometheus text format. Not a Jira route (no JWT).

Access: with ``METRICS_TOKEN`` set, only ``Authorization: Bearer <token>`` (compared in
constant time), else 401. Unset, only clients on this machine (loopback: a Prometheus
agent or sidecar next to the app) are answered; anyone else gets 403 and the advice to
set the token. There is no proxy-header trust in this app, so a load balancer's requests
never look local.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from connect_app.errors import PermissionDenied
from connect_app.metrics.exposition import render
from connect_app.runtime import runtime
from connect_app.web.errors import error_response

bp = Blueprint("metrics", __name__)

_LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


def _token_accepted(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _require_local() -> None:
    if (request.remote_addr or "") not in _LOOPBACK:
        raise PermissionDenied(
            "/metrics answers only local clients while METRICS_TOKEN is unset; set it to scrape from elsewhere.",
            code="metrics_local_only",
        )


@bp.get("/metrics")
def metrics() -> Response | tuple[Response | str, int, dict[str, str]]:
    token = runtime().settings.metrics_token
    if token and not _token_accepted(token):
        refused, status = error_response(
            401, "metrics_token_required", "/metrics needs Authorization: Bearer <METRICS_TOKEN>."
        )
        return refused, status, {"WWW-Authenticate": 'Bearer realm="metrics"'}
    if not token:
        _require_local()
    body, content_type = render()
    response = Response(body, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    if token:
        response.headers["Vary"] = "Authorization"
    return response
