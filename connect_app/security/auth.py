"""The one gate for requests from Jira: verifies the Connect JWT and binds the tenant.

``@jira_auth()`` for iframe pages (module URLs carry a real qsh), ``@jira_auth(CONTEXT)``
for the JSON API (iframes call it with ``AP.context.getToken()``, qsh ``context-qsh``),
``admin=True`` where only Jira administrators may go. After it, ``current_auth()``
returns the verified tenant and account; every query must be scoped by it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from flask import g, has_request_context, request

from connect_app.errors import AuthError
from connect_app.extensions import db
from connect_app.jira import tenants
from connect_app.jira.jwt import QshMode, relative_path, unverified_issuer, verify_request_token
from connect_app.models import Tenant
from connect_app.runtime import runtime

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class JiraAuth:
    tenant_id: int
    client_key: str
    jira_base_url: str
    account_id: str | None
    claims: dict[str, Any]


def request_token() -> str:
    header = request.headers.get("Authorization", "")
    if header[:4].lower() == "jwt ":
        return header[4:].strip()
    token = request.args.get("jwt")
    if token:
        return token
    raise AuthError("This page must be opened from Jira (no Connect token was sent).", code="jwt_missing")


def qsh_path() -> str:
    """The request path as Jira hashed it: relative to our BASE_URL's path, whether or
    not a proxy in front already stripped that prefix."""
    return relative_path(request.script_root + request.path, runtime().settings.base_url)


def qsh_query() -> dict[str, list[str]]:
    return {k: request.args.getlist(k) for k in request.args if k != "jwt"}


def authenticate(qsh_mode: QshMode) -> tuple[Tenant, JiraAuth]:
    """Verify the request's JWT against its tenant's secret; raise ``AuthError``."""
    rt = runtime()
    token = request_token()
    issuer = unverified_issuer(token)
    tenant = tenants.find_tenant(db.session(), issuer)
    if tenant is None:
        raise AuthError("This Jira site has not installed the app.", code="unknown_tenant")
    verified = verify_request_token(
        token,
        secret=tenants.shared_secret(tenant, rt.secrets),
        method=request.method,
        path=qsh_path(),
        query=qsh_query(),
        qsh_mode=qsh_mode,
        leeway=rt.settings.jwt_leeway_seconds,
    )
    tenants.require_enabled(tenant)
    auth = JiraAuth(
        tenant_id=tenant.id,
        client_key=tenant.client_key,
        jira_base_url=tenant.base_url,
        account_id=verified.subject,
        claims=dict(verified.claims),
    )
    return tenant, auth


def jira_auth(
    qsh_mode: QshMode = QshMode.REQUEST, *, admin: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            tenant, auth = authenticate(qsh_mode)
            g.jira_auth = auth
            g.tenant = tenant
            if qsh_mode is QshMode.CONTEXT:  # the JSON API: its tokens carry no ``lic``, the site's last answer counts
                from connect_app.jira.licensing import require_license

                require_license(tenant)
            if admin:
                from connect_app.jira.permissions import require_admin

                require_admin(tenant, auth.account_id)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def current_auth() -> JiraAuth:
    auth: JiraAuth | None = g.get("jira_auth")
    if auth is None:
        raise AuthError("not authenticated")
    return auth


def acting_account() -> str | None:
    """The verified Jira accountId of this request, or None outside one (a job, a test)."""
    if not has_request_context():
        return None
    auth: JiraAuth | None = g.get("jira_auth")
    return auth.account_id if auth is not None else None


def current_tenant() -> Tenant:
    tenant: Tenant | None = g.get("tenant")
    if tenant is None:
        raise AuthError("not authenticated")
    return tenant
