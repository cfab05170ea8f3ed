"""Connect lifecycle hooks.

``installed``/``uninstalled`` are signed by Atlassian with RS256 (``signed-install``):
the key comes from ``CONNECT_INSTALL_KEYS_URL/<kid>``; ``enabled``/``disabled`` are
signed with the tenant's shared secret (HS256). Nothing changes unless the
signature, audience, qsh and issuer all check out.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, request

from connect_app.errors import AuthError, BadRequest, PermissionDenied, ValidationError
from connect_app.extensions import db
from connect_app.jira import tenants
from connect_app.jira.jwt import QshMode, VerifiedToken, verify_install_token, verify_request_token
from connect_app.jira.permissions import forget_tenant_caches
from connect_app.jira.retention import forget_tenant
from connect_app.runtime import runtime
from connect_app.security.auth import qsh_path, qsh_query, request_token

log = logging.getLogger(__name__)

bp = Blueprint("lifecycle", __name__, url_prefix="/lifecycle")

MAX_LIFECYCLE_BODY = 64 * 1024


def _json_body() -> Any:
    if request.content_length is not None and request.content_length > MAX_LIFECYCLE_BODY:
        raise BadRequest("The lifecycle body is too large.", code="payload_too_large", status=413)
    raw = request.get_data(cache=True)
    if len(raw) > MAX_LIFECYCLE_BODY:
        raise BadRequest("The lifecycle body is too large.", code="payload_too_large", status=413)
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("The lifecycle body must be JSON.", code="malformed_json")
    return body


def _verify_signed_install() -> VerifiedToken:
    rt = runtime()
    return verify_install_token(
        request_token(),
        key_fetcher=rt.install_keys,
        audience=rt.settings.base_url,
        method=request.method,
        path=qsh_path(),
        query=qsh_query(),
        leeway=rt.settings.jwt_leeway_seconds,
    )


def _same_issuer(verified: VerifiedToken, client_key: str) -> None:
    if not hmac.compare_digest(verified.issuer.encode(), client_key.encode()):
        raise AuthError("The token was not issued for this clientKey.", code="jwt_issuer_mismatch")


@bp.post("/installed")
def installed() -> tuple[str, int]:
    rt = runtime()
    body = _json_body()
    verified = _verify_signed_install()
    payload = tenants.InstallPayload.parse(body)
    _same_issuer(verified, payload.client_key)
    if payload.key != rt.settings.app_key:
        raise ValidationError(f"This install is for app '{payload.key}', not '{rt.settings.app_key}'.")
    if not tenants.base_url_allowed(payload.base_url, rt.settings.jira_base_url_patterns):
        raise PermissionDenied(
            "This Jira site address is not allowed (see JIRA_BASE_URL_PATTERNS).", code="jira_site_not_allowed"
        )
    session = db.session()
    tenant = tenants.install(session, payload, rt.secrets)
    session.commit()
    log.info("installed for tenant %s (%s)", tenant.id, tenant.base_url)
    return "", 204


@bp.post("/uninstalled")
def uninstalled() -> tuple[str, int]:
    body = _json_body()
    verified = _verify_signed_install()
    payload = tenants.InstallPayload.parse(body)
    _same_issuer(verified, payload.client_key)
    session = db.session()
    tenant = tenants.find_tenant(session, payload.client_key)
    removed = tenants.uninstall(session, payload.client_key)
    session.commit()
    if tenant is not None:
        forget_tenant_caches(tenant.id)
        forget_tenant(tenant.id)  # mirrors on disk and the other tenant-keyed caches
    log.info("uninstalled %s (tenant data %s)", payload.base_url, "deleted" if removed else "already gone")
    return "", 204


def _set_enabled(enabled: bool) -> tuple[str, int]:
    rt = runtime()
    body = _json_body()
    client_key = body.get("clientKey") if isinstance(body, dict) else None
    if not isinstance(client_key, str) or not client_key:
        raise ValidationError("the lifecycle body is missing 'clientKey'")
    session = db.session()
    tenant = tenants.find_tenant(session, client_key)
    if tenant is None:
        raise AuthError("This Jira site has not installed the app.", code="unknown_tenant")
    verified = verify_request_token(
        request_token(),
        secret=tenants.shared_secret(tenant, rt.secrets),
        method=request.method,
        path=qsh_path(),
        query=qsh_query(),
        qsh_mode=QshMode.REQUEST,
        leeway=rt.settings.jwt_leeway_seconds,
    )
    _same_issuer(verified, client_key)
    tenants.set_enabled(session, tenant, enabled)
    session.commit()
    return "", 204


@bp.post("/enabled")
def enabled() -> tuple[str, int]:
    return _set_enabled(True)


@bp.post("/disabled")
def disabled() -> tuple[str, int]:
    return _set_enabled(False)
