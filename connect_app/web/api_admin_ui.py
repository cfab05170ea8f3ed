"""Admin JSON API the Manage repositories page needs beyond the integrations API: OAuth
sign-in for the wizard (see :mod:`connect_app.web.oauth`) and the Jira project picker.
:func:`register` also puts on the app the OAuth popup's routes and the re-sign-in of an
existing integration (:mod:`connect_app.web.api_credentials`, which uses these flows).

Same rules as :mod:`connect_app.web.api_integrations`: Jira administrators only
(``@jira_auth(CONTEXT, admin=True)``), the verified tenant's data only (another tenant's
or another admin's OAuth flow is a 404), field problems as 400s naming the field.
Described in ``/api/openapi.json`` by :data:`PATHS` / :data:`SCHEMAS`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.blueprints import BlueprintSetupState
from sqlalchemy import select

from connect_app.errors import AppError, NotFound
from connect_app.extensions import db
from connect_app.jira.jwt import QshMode
from connect_app.jira.projects import projects_stale, refresh_projects
from connect_app.models import JiraProject
from connect_app.security.auth import current_auth, jira_auth
from connect_app.services import host_checks
from connect_app.services import integration_admin as admin
from connect_app.services.admin_input import (
    ConnectionRequest,
    FieldError,
    Fields,
    parse_base_url,
    parse_create,
    parse_provider,
)
from connect_app.services.admin_stats import integration_stats
from connect_app.web import api_credentials, oauth
from connect_app.web.api_integrations import PREVIEW_LIMIT_MAX, allow_private, field_error, json_body, tenant_id
from connect_app.web.openapi_admin import (
    BOOL,
    INT,
    REMOTE,
    REPOSITORIES_CHOICE,
    SETTINGS,
    STR,
    TIME,
    body,
    nullable,
    obj,
    ref,
    responses,
)
from connect_app.web.serializers import created_payload

log = logging.getLogger(__name__)

bp = Blueprint("api_admin_ui", __name__, url_prefix="/api")
bp.register_error_handler(FieldError, field_error)

FLOW_ID_MAX = 64


def _flow(flow_id: str) -> oauth.Flow:
    found = None
    if len(flow_id) <= FLOW_ID_MAX:
        found = oauth.owned_flow(flow_id, tenant_id(), current_auth().account_id)
    if found is None:
        raise NotFound(
            "There is no such OAuth sign-in (it expired after a while, or belongs to someone else); "
            "choose “Sign in” again.",
            code="oauth_flow_not_found",
        )
    return found


def _connection(flow: oauth.Flow) -> ConnectionRequest:
    return ConnectionRequest(flow.provider_info, oauth.flow_credentials(flow), flow.base_url, flow.namespace)


# --- OAuth ----------------------------------------------------------------------------


@bp.get("/oauth/providers")
@jira_auth(QshMode.CONTEXT, admin=True)
def oauth_providers() -> Response:
    """Which hosts offer OAuth and whether this app has a client registered for each."""
    return jsonify(
        {
            "redirect_uri": oauth.redirect_uri(),
            "providers": [oauth.provider_oauth(info) for info in oauth.oauth_capable()],
        }
    )


@bp.post("/oauth/flows")
@jira_auth(QshMode.CONTEXT, admin=True)
def start_oauth() -> tuple[Response, int]:
    fields = Fields(json_body())
    fields.only({"provider", "base_url", "namespace"})
    info = parse_provider(fields)
    base_url = parse_base_url(fields, info)
    namespace = fields.string("namespace")
    flow = oauth.start_flow(
        tenant_id=tenant_id(), account_id=current_auth().account_id, info=info, base_url=base_url, namespace=namespace
    )
    return jsonify(oauth.public(flow)), 201


@bp.get("/oauth/flows/<flow_id>")
@jira_auth(QshMode.CONTEXT, admin=True)
def get_oauth_flow(flow_id: str) -> Response:
    return jsonify(oauth.public(_flow(flow_id)))


@bp.delete("/oauth/flows/<flow_id>")
@jira_auth(QshMode.CONTEXT, admin=True)
def cancel_oauth_flow(flow_id: str) -> Response:
    oauth.delete_flow(_flow(flow_id))
    return jsonify({"id": flow_id, "deleted": True})


@bp.post("/oauth/flows/<flow_id>/validate")
@jira_auth(QshMode.CONTEXT, admin=True)
def validate_oauth_flow(flow_id: str) -> Response:
    """``POST /api/integrations/validate`` with the flow's tokens as the credentials."""
    flow = _flow(flow_id)
    fields = Fields(json_body())
    fields.only({"list_repositories", "limit"})
    limit = fields.integer("limit", minimum=1, maximum=PREVIEW_LIMIT_MAX) or PREVIEW_LIMIT_MAX
    listing = bool(fields.boolean("list_repositories"))
    verified = host_checks.verify(
        _connection(flow), allow_private=allow_private(), list_limit=limit if listing else None
    )
    out: dict[str, Any] = {"ok": True, "account_name": verified.account_name}
    if verified.repositories is not None:
        out["repositories"] = [
            {
                "external_id": r.external_id,
                "name": r.name,
                "namespace": r.namespace,
                "web_url": r.web_url,
                "default_branch": r.default_branch,
                "private": r.private,
            }
            for r in verified.repositories
        ]
        out["truncated"] = verified.truncated
    return jsonify(out)


@bp.post("/oauth/flows/<flow_id>/integration")
@jira_auth(QshMode.CONTEXT, admin=True)
def create_from_oauth_flow(flow_id: str) -> tuple[Response, int]:
    """``POST /api/integrations`` with the flow's provider, server and tokens; the flow is used up."""
    flow = _flow(flow_id)
    fields = Fields(json_body())
    fields.only({"display_name", "repositories", "settings"})
    credentials = oauth.flow_credentials(flow)
    auth: dict[str, Any] = {"type": "oauth", "token": credentials.token, **credentials.extra}
    data: dict[str, Any] = {**fields.data, "provider": flow.provider, "auth": auth}
    if flow.base_url:
        data["base_url"] = flow.base_url
    if flow.namespace:
        data["namespace"] = flow.namespace
    spec = parse_create(data)
    session = db.session()
    result = admin.create(
        session, tenant_id(), spec, created_by=current_auth().account_id, allow_private=allow_private()
    )
    oauth.delete_flow(flow)
    stats = integration_stats(session, tenant_id(), [result.integration.id])[result.integration.id]
    response = jsonify(created_payload(result, stats))
    response.headers["Location"] = f"/api/integrations/{result.integration.id}"
    return response, 201


# --- Jira projects ----------------------------------------------------------------------


@bp.get("/jira-projects")
@jira_auth(QshMode.CONTEXT, admin=True)
def jira_projects() -> Response:
    """The site's projects for the project association picker (``jira_project`` rows).
    Read from Jira first when there are none yet, or with ``refresh=true`` when stale."""
    session = db.session()
    tid = tenant_id()
    wanted = request.args.get("refresh") == "true"
    problem: str | None = None
    if projects_stale(session, tid) and (wanted or not _has_projects(tid)):
        session.rollback()
        try:
            refresh_projects(tid)
        except AppError as e:
            log.info("jira project refresh for tenant %s failed: %s", tid, e.code)
            problem = f"Could not read this site's projects from Jira ({e.message}); type project keys instead."
    rows = list(session.scalars(select(JiraProject).where(JiraProject.tenant_id == tid).order_by(JiraProject.key)))
    refreshed = min((r.refreshed_at for r in rows), default=None)
    return jsonify(
        {
            "projects": [{"key": r.key, "name": r.name, "id": r.project_id} for r in rows],
            "refreshed_at": refreshed.isoformat() if refreshed else None,
            "error": problem,
        }
    )


def _has_projects(tid: int) -> bool:
    return db.session().scalar(select(JiraProject.id).where(JiraProject.tenant_id == tid).limit(1)) is not None


# --- OpenAPI --------------------------------------------------------------------------

_FLOW_ID = {"name": "flow_id", "in": "path", "required": True, "schema": STR, "description": "an OAuth flow id"}

SCHEMAS: dict[str, Any] = {
    "OAuthFlow": obj(
        {
            "id": STR,
            "provider": STR,
            "status": {"type": "string", "enum": ["created", "redirected", "authorized", "failed"]},
            "error": nullable(STR),
            "authorize_url": {**STR, "description": "Open in a popup window: redirects to the host's sign-in page"},
            "expires_in": {**INT, "description": "seconds this flow stays usable"},
        },
        ["id", "provider", "status", "authorize_url"],
    ),
    "JiraProjects": obj(
        {
            "projects": {"type": "array", "items": obj({"key": STR, "name": STR, "id": STR})},
            "refreshed_at": TIME,
            "error": nullable(STR),
        }
    ),
}

PATHS: dict[str, Any] = {
    "/api/oauth/providers": {
        "get": {
            "summary": "Hosts that offer OAuth, whether this app has a client for each, and the redirect URL",
            "responses": responses(
                "200",
                obj(
                    {
                        "redirect_uri": STR,
                        "providers": {"type": "array", "items": obj({"id": STR, "name": STR, "configured": BOOL})},
                    }
                ),
                "OAuth providers",
            ),
        }
    },
    "/api/oauth/flows": {
        "post": {
            "summary": "Start an OAuth sign-in (state bound to this site, this admin and the provider)",
            "requestBody": body(
                obj({"provider": STR, "base_url": STR, "namespace": STR}, ["provider"]), "Which host to sign in to"
            ),
            "responses": responses(
                "201", ref("OAuthFlow"), "Started", e400="OAuth not offered or not configured; bad server URL"
            ),
        }
    },
    "/api/oauth/flows/{flow_id}": {
        "parameters": [_FLOW_ID],
        "get": {
            "summary": "Where a sign-in stands (poll until authorized or failed)",
            "responses": responses("200", ref("OAuthFlow"), "The flow", e404="Unknown, expired or someone else's"),
        },
        "delete": {
            "summary": "Cancel a sign-in and drop its tokens",
            "responses": responses(
                "200", obj({"id": STR, "deleted": BOOL}), "Cancelled", e404="Unknown, expired or someone else's"
            ),
        },
    },
    "/api/oauth/flows/{flow_id}/validate": {
        "parameters": [_FLOW_ID],
        "post": {
            "summary": "Check the signed-in tokens live (like POST /api/integrations/validate)",
            "requestBody": body(obj({"list_repositories": BOOL, "limit": INT}), "Options"),
            "responses": responses(
                "200",
                obj(
                    {
                        "ok": BOOL,
                        "account_name": STR,
                        "repositories": {"type": "array", "items": REMOTE},
                        "truncated": BOOL,
                    }
                ),
                "The host accepted the tokens",
                e400="Not signed in yet, or the host refused",
                e404="Unknown, expired or someone else's",
            ),
        },
    },
    "/api/oauth/flows/{flow_id}/integration": {
        "parameters": [_FLOW_ID],
        "post": {
            "summary": "Create the integration with the signed-in tokens (like POST /api/integrations)",
            "requestBody": body(
                obj({"display_name": STR, "repositories": REPOSITORIES_CHOICE, "settings": SETTINGS}),
                "The rest of the wizard",
            ),
            "responses": responses(
                "201",
                ref("Integration"),
                "Created; indexing starts",
                e400="Bad field, or the host refused",
                e404="Unknown, expired or someone else's",
                e409="Already connected",
            ),
        },
    },
    "/api/jira-projects": {
        "get": {
            "summary": "This Jira site's projects, for the project association picker",
            "parameters": [
                {
                    "name": "refresh",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "read the list from Jira again when it is older than an hour",
                }
            ],
            "responses": responses("200", ref("JiraProjects"), "Projects by key"),
        }
    },
}


def register(state: BlueprintSetupState) -> None:
    """Put this module's and the OAuth popup's routes on the app, and their description
    into ``/api/openapi.json`` (called when the admin blueprint is registered)."""
    app = state.app
    from connect_app.web.api import OPENAPI

    for companion in (bp, oauth.bp, api_credentials.bp):
        if companion.name not in app.blueprints:
            app.register_blueprint(companion)
    OPENAPI["paths"].update(PATHS)
    OPENAPI["components"]["schemas"].update(SCHEMAS)
