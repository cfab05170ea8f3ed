"""Admin JSON API: integrations and their repositories (Manage repositories page and wizard).

Every route is for Jira administrators only (``@jira_auth(CONTEXT, admin=True)``) and reads
or changes the verified tenant's rows only: another tenant's id is a 404, never a 403.
Field problems are 400s with ``error.field`` naming the input to fix. The logic lives in
:mod:`connect_app.services`; these views parse, call and serialize.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import func, or_, select

from connect_app.errors import NotFound
from connect_app.extensions import db
from connect_app.hosts.registry import provider_info
from connect_app.jira.jwt import QshMode
from connect_app.models import Integration, Repository, RepositoryStatus
from connect_app.runtime import runtime
from connect_app.security.auth import current_auth, current_tenant, jira_auth
from connect_app.services import host_checks
from connect_app.services import integration_admin as admin
from connect_app.services.admin_input import (
    CONNECTION_FIELDS,
    FieldError,
    Fields,
    parse_connection,
    parse_create,
    parse_integration_patch,
    parse_repository_choice,
    parse_repository_patch,
    query_choices,
    query_int,
)
from connect_app.services.admin_stats import active_runs, integration_stats, recommended_interval, repository_counters
from connect_app.web.serializers import (
    created_payload,
    deleted_payload,
    integration_payload,
    reindexed_payload,
    repository_payload,
    updated_payload,
)

bp = Blueprint("api_integrations", __name__, url_prefix="/api")

MAX_DB_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL; a larger one cannot exist
PREVIEW_LIMIT_MAX = 1000
REMOTE_SCAN_MAX = 10_000  # repositories read from the host for one search


# --- shared by the admin API blueprints ---------------------------------------------


def field_error(e: FieldError) -> tuple[Response, int]:
    return jsonify({"error": {"code": e.code, "message": e.message, "field": e.field}}), e.status


bp.register_error_handler(FieldError, field_error)


def json_body() -> Any:
    data = request.get_json(force=True, silent=True)
    if data is None:
        raise FieldError("body", "The request body must be a JSON object.", code="invalid_json")
    return data


def tenant_id() -> int:
    return current_tenant().id


def allow_private() -> bool:
    return runtime().settings.allow_private_hosts


def owned_integration(integration_id: int) -> Integration:
    found = None
    if integration_id <= MAX_DB_ID:
        found = (
            db.session()
            .scalars(select(Integration).where(Integration.id == integration_id, Integration.tenant_id == tenant_id()))
            .first()
        )
    if found is None:
        raise NotFound(f"There is no integration {integration_id}.", code="integration_not_found")
    return found


def owned_repository(repository_id: int) -> Repository:
    found = None
    if repository_id <= MAX_DB_ID:
        found = (
            db.session()
            .scalars(select(Repository).where(Repository.id == repository_id, Repository.tenant_id == tenant_id()))
            .first()
        )
    if found is None:
        raise NotFound(f"There is no repository {repository_id}.", code="repository_not_found")
    return found


def _one(integration: Integration) -> dict[str, Any]:
    session = db.session()
    stats = integration_stats(session, integration.tenant_id, [integration.id])[integration.id]
    parallel = runtime().settings.max_jobs_per_credential
    hint = recommended_interval(session, integration, stats.enabled_repositories, parallel)
    return integration_payload(integration, stats, detail=True, hint=hint)


# --- integrations ------------------------------------------------------------------


@bp.get("/integrations")
@jira_auth(QshMode.CONTEXT, admin=True)
def list_integrations() -> Response:
    session = db.session()
    rows = list(
        session.scalars(select(Integration).where(Integration.tenant_id == tenant_id()).order_by(Integration.id))
    )
    stats = integration_stats(session, tenant_id(), [i.id for i in rows])
    return jsonify({"integrations": [integration_payload(i, stats[i.id]) for i in rows]})


@bp.post("/integrations")
@jira_auth(QshMode.CONTEXT, admin=True)
def create_integration() -> tuple[Response, int]:
    spec = parse_create(json_body())
    session = db.session()
    result = admin.create(
        session, tenant_id(), spec, created_by=current_auth().account_id, allow_private=allow_private()
    )
    stats = integration_stats(session, tenant_id(), [result.integration.id])[result.integration.id]
    response = jsonify(created_payload(result, stats))
    response.headers["Location"] = f"/api/integrations/{result.integration.id}"
    return response, 201


@bp.post("/integrations/validate")
@jira_auth(QshMode.CONTEXT, admin=True)
def validate_connection() -> Response:
    """The wizard's live check: credentials (and optionally the repositories to pick from)."""
    fields = Fields(json_body())
    fields.only({*CONNECTION_FIELDS, "list_repositories", "limit"})
    connection = parse_connection(fields)
    limit = fields.integer("limit", minimum=1, maximum=PREVIEW_LIMIT_MAX) or PREVIEW_LIMIT_MAX
    listing = bool(fields.boolean("list_repositories"))
    verified = host_checks.verify(connection, allow_private=allow_private(), list_limit=limit if listing else None)
    body: dict[str, Any] = {"ok": True, "account_name": verified.account_name}
    if verified.repositories is not None:
        body["repositories"] = [_remote(r) for r in verified.repositories]
        body["truncated"] = verified.truncated
    return jsonify(body)


def _remote(remote: Any, added: bool | None = None) -> dict[str, Any]:
    out = {
        "external_id": remote.external_id,
        "name": remote.name,
        "namespace": remote.namespace,
        "web_url": remote.web_url,
        "default_branch": remote.default_branch,
        "private": remote.private,
    }
    if added is not None:
        out["added"] = added
    return out


@bp.get("/integrations/<int:integration_id>")
@jira_auth(QshMode.CONTEXT, admin=True)
def get_integration(integration_id: int) -> Response:
    return jsonify(_one(owned_integration(integration_id)))


@bp.patch("/integrations/<int:integration_id>")
@jira_auth(QshMode.CONTEXT, admin=True)
def patch_integration(integration_id: int) -> Response:
    integration = owned_integration(integration_id)
    patch = parse_integration_patch(json_body(), provider_info(integration.provider))
    result = admin.update_integration(db.session(), integration, patch, allow_private=allow_private())
    stats = integration_stats(db.session(), integration.tenant_id, [integration.id])[integration.id]
    return jsonify(updated_payload(result, stats))


@bp.delete("/integrations/<int:integration_id>")
@jira_auth(QshMode.CONTEXT, admin=True)
def delete_integration(integration_id: int) -> Response:
    integration = owned_integration(integration_id)
    result = admin.delete_integration(db.session(), integration, allow_private=allow_private())
    return jsonify(deleted_payload(result))


@bp.post("/integrations/<int:integration_id>/reindex")
@jira_auth(QshMode.CONTEXT, admin=True)
def reindex_integration(integration_id: int) -> tuple[Response, int]:
    result = admin.reindex_integration(db.session(), owned_integration(integration_id))
    return jsonify(reindexed_payload(result)), 202


# --- repositories ------------------------------------------------------------------


@bp.get("/integrations/<int:integration_id>/repositories")
@jira_auth(QshMode.CONTEXT, admin=True)
def list_repositories(integration_id: int) -> Response:
    integration = owned_integration(integration_id)
    args = request.args
    statuses = query_choices(args, "status", [s.value for s in RepositoryStatus])
    enabled = args.get("enabled")
    if enabled not in (None, "", "true", "false"):
        raise FieldError("enabled", "enabled must be true or false")
    search = (args.get("q") or "").strip()
    if "\x00" in search:  # PostgreSQL text cannot hold NUL
        raise FieldError("q", "q must not contain NUL characters")
    limit = query_int(args, "limit", default=200, minimum=1, maximum=1000) or 200
    offset = query_int(args, "offset", default=0, minimum=0, maximum=10_000_000) or 0

    session = db.session()
    query = select(Repository).where(
        Repository.integration_id == integration.id, Repository.tenant_id == integration.tenant_id
    )
    if statuses:
        query = query.where(Repository.status.in_(statuses))
    if enabled:
        query = query.where(Repository.enabled.is_(enabled == "true"))
    if search:
        pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(func.lower(Repository.name).like(pattern, escape="\\"), Repository.external_id == search)
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    repos = list(
        session.scalars(query.order_by(func.lower(Repository.name), Repository.id).limit(limit).offset(offset))
    )
    ids = [r.id for r in repos]
    counters = repository_counters(session, integration.tenant_id, ids)
    running = active_runs(session, integration.tenant_id, ids)
    return jsonify(
        {
            "integration_id": integration.id,
            "total": total,
            "limit": limit,
            "offset": offset,
            "repositories": [repository_payload(r, counters[r.id], running.get(r.id)) for r in repos],
        }
    )


@bp.post("/integrations/<int:integration_id>/repositories")
@jira_auth(QshMode.CONTEXT, admin=True)
def add_repositories(integration_id: int) -> tuple[Response, int]:
    """Add picked repositories (ids or full names from ``remote-repositories``)."""
    integration = owned_integration(integration_id)
    fields = Fields(json_body())
    fields.only({"repositories"})
    if fields.data.get("repositories") is None:
        raise FieldError("repositories", "repositories is required: a list of repository ids", code="required")
    choice = parse_repository_choice(fields.data["repositories"])
    if not choice.picked:
        raise FieldError("repositories", "repositories must be a list of repository ids", code="bad_selection")
    result = admin.add_picked(db.session(), integration, choice.picked, allow_private=allow_private())
    stats = integration_stats(db.session(), integration.tenant_id, [integration.id])[integration.id]
    return jsonify(updated_payload(result, stats)), 201 if result.repositories_added else 200


@bp.get("/integrations/<int:integration_id>/remote-repositories")
@jira_auth(QshMode.CONTEXT, admin=True)
def remote_repositories(integration_id: int) -> Response:
    """The host's repositories to pick from, with whether each is already added."""
    integration = owned_integration(integration_id)
    search = (request.args.get("q") or "").strip().lower()
    limit = query_int(request.args, "limit", default=100, minimum=1, maximum=PREVIEW_LIMIT_MAX) or 100
    session = db.session()
    known = set(session.scalars(select(Repository.external_id).where(Repository.integration_id == integration.id)))
    connection = admin.connection_of(integration)
    verified = host_checks.verify(connection, allow_private=allow_private(), list_limit=REMOTE_SCAN_MAX)
    matches = [r for r in verified.repositories or [] if not search or search in r.name.lower()]
    return jsonify(
        {
            "account_name": verified.account_name,
            "repositories": [_remote(r, r.external_id in known) for r in matches[:limit]],
            "truncated": verified.truncated or len(matches) > limit,
        }
    )


@bp.patch("/repositories/<int:repository_id>")
@jira_auth(QshMode.CONTEXT, admin=True)
def patch_repository(repository_id: int) -> Response:
    repo = owned_repository(repository_id)
    patch = parse_repository_patch(json_body())
    session = db.session()
    admin.update_repository(session, repo, patch)
    counters = repository_counters(session, repo.tenant_id, [repo.id])
    return jsonify(
        repository_payload(repo, counters[repo.id], active_runs(session, repo.tenant_id, [repo.id]).get(repo.id))
    )


@bp.post("/repositories/<int:repository_id>/reindex")
@jira_auth(QshMode.CONTEXT, admin=True)
def reindex_repository(repository_id: int) -> tuple[Response, int]:
    repo = owned_repository(repository_id)
    integration = owned_integration(repo.integration_id)
    result = admin.reindex_repository(db.session(), repo, integration)
    return jsonify(reindexed_payload(result)), 202
