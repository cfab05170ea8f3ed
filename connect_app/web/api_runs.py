"""Admin JSON API: the indexing queue viewer (``IndexRun`` rows) and "Clear queued runs"."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from connect_app.extensions import db, redis_conn
from connect_app.jira.jwt import QshMode
from connect_app.models import RunKind, RunStatus, Trigger, utcnow
from connect_app.security.auth import jira_auth
from connect_app.services.admin_input import FieldError, query_choices, query_int
from connect_app.services.run_admin import clear_queued, list_runs
from connect_app.web.api_integrations import field_error, owned_integration, owned_repository, tenant_id
from connect_app.web.serializers import cleared_payload, run_payload

bp = Blueprint("api_runs", __name__, url_prefix="/api")
bp.register_error_handler(FieldError, field_error)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_ID = 2**31 - 1


def _scope() -> tuple[int | None, int | None]:
    """``integration`` / ``repository`` filters: ids of this tenant (404 otherwise)."""
    integration_id = query_int(request.args, "integration", default=None, minimum=1, maximum=MAX_ID)
    repository_id = query_int(request.args, "repository", default=None, minimum=1, maximum=MAX_ID)
    if integration_id is not None:
        owned_integration(integration_id)
    if repository_id is not None:
        owned_repository(repository_id)
    return integration_id, repository_id


@bp.get("/index-runs")
@jira_auth(QshMode.CONTEXT, admin=True)
def index_runs() -> Response:
    args = request.args
    statuses = query_choices(args, "status", [s.value for s in RunStatus])
    triggers = query_choices(args, "trigger", [t.value for t in Trigger])
    kinds = query_choices(args, "kind", [k.value for k in RunKind])
    limit = query_int(args, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT
    before = query_int(args, "before", default=None, minimum=1, maximum=MAX_ID)
    integration_id, repository_id = _scope()
    rows = list_runs(
        db.session(),
        tenant_id(),
        statuses=statuses,
        triggers=triggers,
        kinds=kinds,
        integration_id=integration_id,
        repository_id=repository_id,
        before=before,
        limit=limit,
    )
    now = utcnow()
    return jsonify(
        {
            "runs": [run_payload(row, now) for row in rows],
            "next_before": rows[-1].run.id if len(rows) == limit else None,
        }
    )


@bp.delete("/index-runs")
@jira_auth(QshMode.CONTEXT, admin=True)
def clear_index_runs() -> Response:
    """Clear queued runs: only ``status=queued`` may be cleared (running ones finish, finished
    ones are history)."""
    status = request.args.get("status")
    if status != RunStatus.QUEUED.value:
        raise FieldError("status", "only queued runs can be cleared: send status=queued", code="bad_status")
    integration_id, repository_id = _scope()
    result = clear_queued(
        db.session(), redis_conn.client, tenant_id(), integration_id=integration_id, repository_id=repository_id
    )
    return jsonify(cleared_payload(result))
