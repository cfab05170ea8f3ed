"""The calling user's own git tokens and permission cache (the user settings page).

``GET /api/me/tokens``, ``PUT|DELETE /api/me/tokens/{integration_id}``,
``POST /api/me/tokens/{integration_id}/test`` and ``POST /api/me/permissions/refresh``.
The tenant and the Jira account come from the verified context token only; a token without
an account (an app-only token) is a 403. A token never leaves in a response: only its last
four characters and the host account it belongs to. Logic: ``services.user_tokens``;
described in ``openapi_user``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy.exc import IntegrityError

from connect_app.errors import Conflict, PermissionDenied
from connect_app.extensions import db
from connect_app.jira.jwt import QshMode
from connect_app.security.auth import current_auth, jira_auth
from connect_app.services import user_permissions, user_tokens
from connect_app.services.admin_input import FieldError, Fields
from connect_app.web.api_integrations import field_error, json_body
from connect_app.web.serializers import iso

bp = Blueprint("api_me", __name__, url_prefix="/api")
bp.register_error_handler(FieldError, field_error)


def caller() -> tuple[int, str]:
    """The verified tenant and Jira account of the request."""
    auth = current_auth()
    if not auth.account_id:
        raise PermissionDenied(
            "This request was not made by a signed-in Jira user, and personal tokens belong to a user. "
            "Open the page from Jira while signed in.",
            code="no_user",
        )
    return auth.tenant_id, auth.account_id


def entry_payload(entry: user_tokens.TokenEntry) -> dict[str, Any]:
    integration, token = entry.integration, entry.token
    return {
        "integration": {
            "id": integration.id,
            "display_name": integration.display_name,
            "provider": integration.provider,
            "provider_name": entry.info.name,
            "auth_types": [a.value for a in entry.auth_types],
        },
        "required": entry.required,
        "token": None
        if token is None
        else {
            "last4": token.last4 or None,
            "host_account_name": token.host_account_name,
            "validated_at": iso(token.validated_at),
            "invalid_reason": token.invalid_reason,
        },
    }


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/me/tokens")
@jira_auth(QshMode.CONTEXT)
def list_tokens() -> Response:
    tenant_id, account_id = caller()
    entries = user_tokens.list_tokens(db.session(), tenant_id, account_id)
    return _no_store(jsonify({"tokens": [entry_payload(e) for e in entries]}))


@bp.put("/me/tokens/<int:integration_id>")
@jira_auth(QshMode.CONTEXT)
def put_token(integration_id: int) -> Response:
    tenant_id, account_id = caller()
    fields = Fields(json_body())
    fields.only({"token", "username"})
    token = fields.string("token", required=True, max_length=user_tokens.TOKEN_MAX_LENGTH)
    username = fields.string("username", max_length=user_tokens.USERNAME_MAX_LENGTH)
    session = db.session()
    try:
        entry = user_tokens.save_token(session, tenant_id, account_id, integration_id, token or "", username)
        session.commit()
    except IntegrityError as e:  # the same user saved a token for it at the same moment
        session.rollback()
        raise Conflict("Another save of this token happened at the same time; reload the page.") from e
    return _no_store(jsonify(entry_payload(entry)))


@bp.post("/me/tokens/<int:integration_id>/test")
@jira_auth(QshMode.CONTEXT)
def test_token(integration_id: int) -> Response:
    tenant_id, account_id = caller()
    session = db.session()
    result = user_tokens.recheck_token(session, tenant_id, account_id, integration_id)
    session.commit()
    return _no_store(jsonify({"ok": result.ok, "message": result.message, **entry_payload(result.entry)}))


@bp.delete("/me/tokens/<int:integration_id>")
@jira_auth(QshMode.CONTEXT)
def delete_token(integration_id: int) -> tuple[str, int]:
    tenant_id, account_id = caller()
    session = db.session()
    user_tokens.delete_token(session, tenant_id, account_id, integration_id)
    session.commit()
    return "", 204


@bp.post("/me/permissions/refresh")
@jira_auth(QshMode.CONTEXT)
def refresh_permissions() -> tuple[str, int]:
    """Forget what the user's tokens could read; the next view of an issue asks the hosts again."""
    tenant_id, account_id = caller()
    session = db.session()
    user_permissions.forget(session, tenant_id, account_id)
    session.commit()
    return "", 204
