"""Create a branch / pull request from an issue, the job status, and what the dialogs offer (issue 6).

``POST /api/issues/<key>/branches``, ``POST /api/issues/<key>/pull-requests`` (202 ``{job_id}``),
``GET /api/jobs/<id>``, ``GET /api/issues/<key>/create-options``, ``GET /api/repositories/<id>/branches``.
Every route takes the tenant and the user from the verified context token only; the work is in
:mod:`connect_app.services.actions`, :mod:`~connect_app.services.action_options` and, in the
worker, :mod:`~connect_app.services.action_runner`. Described in :mod:`connect_app.web.openapi_actions`.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from connect_app.errors import ValidationError
from connect_app.extensions import db, redis_conn
from connect_app.indexing.issue_keys import project_of
from connect_app.jira.jwt import QshMode
from connect_app.models import ActionKind
from connect_app.security.auth import current_auth, current_tenant, jira_auth
from connect_app.services import action_options, action_status, actions
from connect_app.services.action_input import parse_issue_key
from connect_app.services.admin_input import FieldError

bp = Blueprint("api_actions", __name__, url_prefix="/api")

ACTIONS = {"branch": ActionKind.CREATE_BRANCH, "pull_request": ActionKind.CREATE_PULL_REQUEST}


@bp.errorhandler(actions.ActionError)
def _action_error(e: actions.ActionError) -> tuple[Response, int]:
    return jsonify(e.to_dict()), e.status


@bp.errorhandler(FieldError)
def _field_error(e: FieldError) -> tuple[Response, int]:
    return jsonify({"error": {"code": e.code, "message": e.message, "field": e.field}}), e.status


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _submit(key: str, kind: ActionKind) -> tuple[Response, int]:
    auth = current_auth()
    job = actions.request_action(
        db.session(),
        redis_conn.client,
        tenant=current_tenant(),
        account_id=auth.account_id,
        issue_key=key,
        kind=kind,
        data=request.get_json(force=True, silent=True),
    )
    response = _no_store(jsonify({"job_id": job.id, "status": job.status}))
    response.headers["Location"] = url_for("api_actions.job_status", job_id=job.id)
    return response, 202


@bp.post("/issues/<key>/branches")
@jira_auth(QshMode.CONTEXT)
def create_branch(key: str) -> tuple[Response, int]:
    return _submit(key, ActionKind.CREATE_BRANCH)


@bp.post("/issues/<key>/pull-requests")
@jira_auth(QshMode.CONTEXT)
def create_pull_request(key: str) -> tuple[Response, int]:
    return _submit(key, ActionKind.CREATE_PULL_REQUEST)


@bp.get("/jobs/<job_id>")
@jira_auth(QshMode.CONTEXT)
def job_status(job_id: str) -> Response:
    auth = current_auth()
    session = db.session()
    job = action_status.find_job(session, auth.tenant_id, auth.account_id, job_id)
    action_status.expire_if_lost(session, job)
    return _no_store(jsonify(action_status.job_payload(job)))


def _issue_from_query(key: str) -> actions.Issue:
    """The dialog passes what Jira put in its URL (summary, type); only without a summary is Jira asked."""
    issue_key = parse_issue_key(key)
    summary = request.args.get("summary")
    if summary is None:
        return actions.fetch_issue(current_tenant(), issue_key)
    issue_type = request.args.get("issuetype") or ""
    return actions.Issue(issue_key, summary[:1000], issue_type[:100], project_of(issue_key))


@bp.get("/issues/<key>/create-options")
@jira_auth(QshMode.CONTEXT)
def create_options(key: str) -> Response:
    action = request.args.get("action") or "branch"
    kind = ACTIONS.get(action)
    if kind is None:
        raise ValidationError("action must be 'branch' or 'pull_request'.", code="bad_action")
    auth = current_auth()
    account_id = actions.require_account(auth.account_id)
    issue = _issue_from_query(key)
    body = action_options.create_options(
        db.session(),
        tenant_id=auth.tenant_id,
        account_id=account_id,
        jira_base_url=auth.jira_base_url,
        issue=issue,
        kind=kind,
    )
    return _no_store(jsonify(body))


@bp.get("/repositories/<int:repository_id>/branches")
@jira_auth(QshMode.CONTEXT)
def repository_branches(repository_id: int) -> Response:
    auth = current_auth()
    body = action_options.branch_names(
        db.session(),
        tenant_id=auth.tenant_id,
        account_id=actions.require_account(auth.account_id),
        repository_id=repository_id,
        query=request.args.get("q") or "",
    )
    return _no_store(jsonify(body))
