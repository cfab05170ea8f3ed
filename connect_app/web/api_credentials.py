"""Re-sign-in for an existing integration: ``PUT /api/integrations/<id>/credentials``.

The body is either ``{"auth": {type, token | username and password, ...}}`` (new credentials
typed in) or ``{"oauth_flow": "<flow id>"}`` -- an OAuth sign-in this admin completed with
``POST /api/oauth/flows`` (see :mod:`connect_app.web.oauth`) for the integration's provider
and server; its tokens are used once and the flow is dropped. The credentials are checked
live before anything is stored (:mod:`connect_app.services.credentials_update`); any
problem is a 400 in words and nothing changes.

Answers the integration's payload plus ``account_changed`` (the host account differs from the
one before: accepted, and written to the integration's log), ``previous_account_name`` and
what was queued. Jira administrators only; another tenant's integration is a 404. Registered
with the admin UI API (:func:`connect_app.web.api_admin_ui.register`); described in
:mod:`connect_app.web.openapi_admin`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from connect_app.extensions import db
from connect_app.hosts.registry import provider_info
from connect_app.jira.jwt import QshMode
from connect_app.models import Integration
from connect_app.security.auth import current_auth, jira_auth
from connect_app.services.admin_input import FieldError, Fields, normalized_server_url, parse_credentials
from connect_app.services.admin_stats import integration_stats
from connect_app.services.credentials_update import replace_credentials
from connect_app.web import oauth
from connect_app.web.api_integrations import allow_private, field_error, json_body, owned_integration, tenant_id
from connect_app.web.serializers import updated_payload

bp = Blueprint("api_credentials", __name__, url_prefix="/api")
bp.register_error_handler(FieldError, field_error)

FLOW_ID_MAX = 64


def _same_server(a: str | None, b: str | None) -> bool:
    return (normalized_server_url(a) if a else None) == (normalized_server_url(b) if b else None)


def _flow_for(integration: Integration, flow_id: Any) -> oauth.Flow:
    if not isinstance(flow_id, str) or not flow_id.strip():
        raise FieldError("oauth_flow", "oauth_flow must be the id of an OAuth sign-in (a string)")
    found = None
    if len(flow_id) <= FLOW_ID_MAX:
        found = oauth.owned_flow(flow_id.strip(), tenant_id(), current_auth().account_id)
    if found is None:
        raise FieldError(
            "oauth_flow",
            "There is no such OAuth sign-in (it expired after a while, or was started by someone else); "
            "start the sign-in again.",
            code="oauth_flow_not_found",
        )
    info = provider_info(integration.provider)
    if found.provider != integration.provider or not _same_server(found.base_url, integration.base_url):
        where = f"{info.name} at {integration.base_url}" if integration.base_url else info.name
        raise FieldError(
            "oauth_flow",
            f"This OAuth sign-in was for another host or server; sign in to {where}, the host of this integration.",
            code="oauth_flow_mismatch",
        )
    return found


@bp.put("/integrations/<int:integration_id>/credentials")
@jira_auth(QshMode.CONTEXT, admin=True)
def replace_integration_credentials(integration_id: int) -> Response:
    integration = owned_integration(integration_id)
    fields = Fields(json_body())
    fields.only({"auth", "oauth_flow"})
    has_auth, has_flow = fields.data.get("auth") is not None, fields.data.get("oauth_flow") is not None
    if has_auth == has_flow:
        raise FieldError(
            "auth",
            "Send either auth (new credentials: {type, token, ...}) or oauth_flow (the id of a completed "
            "OAuth sign-in), not both and not neither.",
            code="required" if not has_auth else "invalid_field",
        )
    flow: oauth.Flow | None = None
    if has_flow:
        flow = _flow_for(integration, fields.data["oauth_flow"])
        try:
            credentials = oauth.flow_credentials(flow)
        except FieldError as e:  # the sign-in is not finished (or failed)
            raise FieldError("oauth_flow", flow.error or e.message, code=e.code) from e
    else:
        auth = fields.object("auth")
        assert auth is not None
        credentials = parse_credentials(auth, provider_info(integration.provider))
    session = db.session()
    result = replace_credentials(
        session,
        integration,
        credentials,
        allow_private=allow_private(),
        by=current_auth().account_id,
        via_oauth=flow is not None,
    )
    if flow is not None:
        oauth.delete_flow(flow)  # used up: its tokens now live (encrypted) on the integration
    stats = integration_stats(session, integration.tenant_id, [integration.id])[integration.id]
    body = updated_payload(result.updated, stats)
    body.update(
        {
            "account_changed": result.account_changed,
            "previous_account_name": result.previous_account_name,
            "reindex_requested": result.reindex_requested,
            "reindex_enqueued": result.reindex_enqueued,
            "note": result.note,
        }
    )
    return jsonify(body)
