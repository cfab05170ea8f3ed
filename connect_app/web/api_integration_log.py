"""The integration log API (issues 5, 7): the admin's "View log".

* ``GET /api/integrations/<id>/log?level=&source=&repository=&before=&limit=`` -- events,
  newest first (:mod:`connect_app.services.integration_log`): Development panel findings,
  smart-commit outcomes, webhook and credential events. ``level`` and ``source`` take
  comma-separated values; ``before`` is the previous page's ``next_before``.
* ``GET /api/integrations/<id>/log/summary`` -- where things stand now: the Development
  panel per repository (:class:`~connect_app.models.DevinfoRepositoryState`: status, last
  error, unknown issue keys), whether Jira refuses the app on this site, the smart-commit
  settings and the newest smart-commit ledger rows.

Jira administrators only, the verified tenant's rows only: another tenant's integration (or a
repository of another integration) is a 404. Described by
:mod:`connect_app.web.openapi_log`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import case, func, select

from connect_app.errors import NotFound
from connect_app.extensions import db
from connect_app.jira.devinfo import state_summary, tenant_state
from connect_app.jira.jwt import QshMode
from connect_app.jira.smart_commits import smart_commit_log
from connect_app.models import (
    DevinfoRepositoryState,
    DevinfoStatus,
    EventLevel,
    EventSource,
    Integration,
    IntegrationEvent,
    Repository,
)
from connect_app.security.auth import jira_auth
from connect_app.services.admin_input import FieldError, query_choices, query_int
from connect_app.services.integration_log import list_events
from connect_app.services.integration_settings import (
    Feature,
    feature_enabled,
    smart_commit_max_age_days,
    smart_commits_by,
)
from connect_app.web.api_integrations import MAX_DB_ID, field_error, owned_integration, owned_repository, tenant_id
from connect_app.web.serializers import iso

bp = Blueprint("api_integration_log", __name__, url_prefix="/api")
bp.register_error_handler(FieldError, field_error)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SUMMARY_REPOSITORIES = 500  # repositories listed in the summary (problems first)
SUMMARY_LEDGER = 50
UNKNOWN_KEYS_SHOWN = 50  # per repository, newest
RESULT_SAMPLES = 5


def _repository_names(integration: Integration, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = db.session().execute(
        select(Repository.id, Repository.name).where(
            Repository.tenant_id == integration.tenant_id,
            Repository.integration_id == integration.id,
            Repository.id.in_(wanted),
        )
    )
    return {int(rid): str(name) for rid, name in rows}


def event_payload(event: IntegrationEvent, names: dict[int, str]) -> dict[str, Any]:
    repository = None
    if event.repository_id is not None and event.repository_id in names:
        repository = {"id": event.repository_id, "name": names[event.repository_id]}
    return {
        "id": event.id,
        "at": iso(event.at),
        "level": event.level,
        "source": event.source,
        "message": event.message,
        "repository": repository,
        "detail": event.detail or {},
    }


def _repository_filter(integration: Integration) -> int | None:
    repository_id = query_int(request.args, "repository", default=None, minimum=1, maximum=MAX_DB_ID)
    if repository_id is None:
        return None
    repo = owned_repository(repository_id)
    if repo.integration_id != integration.id:
        raise NotFound(
            f"Repository {repository_id} does not belong to integration {integration.id}.",
            code="repository_not_found",
        )
    return repository_id


@bp.get("/integrations/<int:integration_id>/log")
@jira_auth(QshMode.CONTEXT, admin=True)
def integration_log(integration_id: int) -> Response:
    integration = owned_integration(integration_id)
    args = request.args
    levels = query_choices(args, "level", [lv.value for lv in EventLevel])
    sources = query_choices(args, "source", [s.value for s in EventSource])
    limit = query_int(args, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT
    before = query_int(args, "before", default=None, minimum=1, maximum=MAX_DB_ID)
    repository_id = _repository_filter(integration)
    events = list_events(
        db.session(),
        tenant_id(),
        integration.id,
        levels=levels,
        sources=sources,
        repository_id=repository_id,
        before=before,
        limit=limit,
    )
    names = _repository_names(integration, (e.repository_id for e in events))
    return jsonify(
        {
            "events": [event_payload(e, names) for e in events],
            "next_before": events[-1].id if len(events) == limit else None,
        }
    )


def _site_state() -> dict[str, Any]:
    state = tenant_state(db.session(), tenant_id())
    if state is None:
        return {"status": DevinfoStatus.OK.value, "detail": None, "http_status": None, "since": None}
    return {
        "status": state.status,
        "detail": state.detail,
        "http_status": state.http_status,
        "since": iso(state.since),
    }


def _repository_states(integration: Integration) -> tuple[list[dict[str, Any]], int]:
    session = db.session()
    scope = (
        DevinfoRepositoryState.tenant_id == integration.tenant_id,
        DevinfoRepositoryState.integration_id == integration.id,
    )
    total = int(session.scalar(select(func.count()).select_from(DevinfoRepositoryState).where(*scope)) or 0)
    problems_first = case((DevinfoRepositoryState.status == DevinfoStatus.OK.value, 1), else_=0)
    rows = session.execute(
        select(DevinfoRepositoryState, Repository.name)
        .join(Repository, Repository.id == DevinfoRepositoryState.repository_id)
        .where(*scope, Repository.tenant_id == integration.tenant_id)
        .order_by(problems_first, func.lower(Repository.name), Repository.id)
        .limit(SUMMARY_REPOSITORIES)
    )
    out = []
    for state, name in rows:
        summary = state_summary(state)
        summary["last_result"] = _brief(summary.get("last_result") or {})
        summary["unknown_issue_keys"] = list(summary.get("unknown_issue_keys") or [])[-UNKNOWN_KEYS_SHOWN:]
        out.append({"repository": {"id": state.repository_id, "name": name}, **summary})
    return out, total


def _brief(last_result: dict[str, Any]) -> dict[str, Any]:
    """The last push's counts and a few refused entities (the full samples are in the log)."""
    keep = ("status", "backfill", "sent", "accepted", "failed_count", "unknown_issue_key_count", "error")
    brief = {k: last_result[k] for k in keep if k in last_result}
    brief["failed"] = list(last_result.get("failed") or [])[:RESULT_SAMPLES]
    return brief


@bp.get("/integrations/<int:integration_id>/log/summary")
@jira_auth(QshMode.CONTEXT, admin=True)
def integration_log_summary(integration_id: int) -> Response:
    integration = owned_integration(integration_id)
    repositories, total = _repository_states(integration)
    smart_on = feature_enabled(integration, Feature.SMART_COMMITS)
    return jsonify(
        {
            "integration_id": integration.id,
            "development_panel": {
                "enabled": feature_enabled(integration, Feature.DEVELOPMENT_PANEL),
                "site": _site_state(),
                "repositories": repositories,
                "repository_count": total,
                "truncated": total > len(repositories),
            },
            "smart_commits": {
                "enabled": smart_on,
                "run_by": smart_commits_by(integration).value if smart_on else None,
                "max_age_days": smart_commit_max_age_days(integration),
                "recent": smart_commit_log(
                    db.session(), integration.id, limit=SUMMARY_LEDGER, tenant_id=integration.tenant_id
                ),
            },
        }
    )
