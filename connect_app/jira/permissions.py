"""Is this Jira user an administrator? Asked of Jira, cached briefly per user.

The descriptor's ``user_is_admin`` condition only hides the page; the server
must check the *user's* global ADMINISTER permission itself. ``mypermissions``
would answer for the app's own user, so this uses ``POST /rest/api/3/permissions/check``
with the accountId from the verified token.
"""

from __future__ import annotations

from connect_app.errors import PermissionDenied
from connect_app.extensions import redis_conn
from connect_app.jira.client import JiraClient
from connect_app.jira.tenants import shared_secret
from connect_app.models import Tenant
from connect_app.runtime import runtime

PERMISSION_CHECK_PATH = "/rest/api/3/permissions/check"


def jira_client_for(tenant: Tenant) -> JiraClient:
    rt = runtime()
    return JiraClient(
        base_url=tenant.base_url,
        app_key=rt.settings.app_key,
        shared_secret=shared_secret(tenant, rt.secrets),
        timeout=(5.0, rt.settings.http_timeout_seconds),
    )


def _cache_key(tenant: Tenant, account_id: str) -> str:
    return f"gcj:admin:{tenant.id}:{account_id}"


def user_is_admin(tenant: Tenant, account_id: str) -> bool:
    redis = redis_conn.client
    key = _cache_key(tenant, account_id)
    cached = redis.get(key)
    if cached is not None:
        return cached == b"1"
    body = jira_client_for(tenant).post_json(
        PERMISSION_CHECK_PATH, {"accountId": account_id, "globalPermissions": ["ADMINISTER"]}
    )
    granted = isinstance(body, dict) and "ADMINISTER" in (body.get("globalPermissions") or [])
    redis.set(key, b"1" if granted else b"0", ex=runtime().settings.admin_check_cache_seconds)
    return granted


def forget_admin(tenant: Tenant, account_id: str) -> None:
    redis_conn.client.delete(_cache_key(tenant, account_id))


def forget_tenant_caches(tenant_id: int) -> None:
    """Uninstall keeps nothing: drop every cached answer about the tenant's users."""
    redis = redis_conn.client
    # gcj:browse-projects: connect_app.services.browsable_projects (BROWSE_PROJECTS answers).
    for prefix in ("gcj:admin", "gcj:browse-projects"):
        keys = list(redis.scan_iter(match=f"{prefix}:{tenant_id}:*", count=500))
        if keys:
            redis.delete(*keys)


def require_admin(tenant: Tenant, account_id: str | None) -> None:
    if not account_id or not user_is_admin(tenant, account_id):
        raise PermissionDenied("Only Jira administrators can manage Git Connect.", code="admin_required")
