"""Which Jira projects a user may browse, asked of Jira and cached briefly per user.

The repository browser shows a repository limited to projects P1..Pn only to a user who can
browse at least one of them. Outside an issue there is no issue context to lean on, so the app
asks Jira itself (``POST /rest/api/3/permissions/check`` with ``projectPermissions``
``BROWSE_PROJECTS`` and the viewer's accountId, signed as the app: Connect apps may ask this
for any user). The request takes project *ids*, so keys are mapped through the tenant's
``jira_project`` rows; a key the app does not know (never listed by Jira) cannot be checked
and counts as not browsable.

Answers are cached in Redis per (tenant, account) and project id for
``admin_check_cache_seconds`` (the same "briefly" as the admin check): a revoked permission
shows within minutes, and one page view costs at most one Jira call.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.extensions import redis_conn
from connect_app.jira.permissions import PERMISSION_CHECK_PATH, jira_client_for
from connect_app.models import JiraProject, Tenant
from connect_app.runtime import runtime

BROWSE_PROJECTS = "BROWSE_PROJECTS"
MAX_PROJECTS_PER_CHECK = 1000  # Jira's documented limit per permissions/check request


def cache_key(tenant_id: int, account_id: str) -> str:
    return f"gcj:browse-projects:{tenant_id}:{account_id}"


def project_ids(session: Session, tenant_id: int, keys: Collection[str]) -> dict[str, int]:
    """Jira's numeric id of each known project key of the tenant (unknown keys are left out)."""
    if not keys:
        return {}
    rows = session.execute(
        select(JiraProject.key, JiraProject.project_id).where(
            JiraProject.tenant_id == tenant_id, JiraProject.key.in_(sorted(keys))
        )
    )
    out: dict[str, int] = {}
    for key, project_id in rows:
        if str(project_id).isdigit():
            out[key] = int(project_id)
    return out


def granted_projects(body: Any) -> set[int]:
    """Project ids granted ``BROWSE_PROJECTS`` in a ``BulkPermissionGrants`` answer."""
    granted: set[int] = set()
    if not isinstance(body, dict):
        return granted
    for grant in body.get("projectPermissions") or []:
        if isinstance(grant, dict) and grant.get("permission") == BROWSE_PROJECTS:
            granted.update(int(p) for p in grant.get("projects") or [] if isinstance(p, int) or str(p).isdigit())
    return granted


def _fresh_answers(stored: dict[Any, Any], now: int) -> dict[int, bool]:
    answers: dict[int, bool] = {}
    for field, value in stored.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        text = value.decode() if isinstance(value, bytes) else str(value)
        granted, _, until = text.partition(":")
        if name.isdigit() and until.isdigit() and int(until) > now and granted in ("0", "1"):
            answers[int(name)] = granted == "1"
    return answers


def _chunks(ids: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def browsable_keys(session: Session, tenant: Tenant, account_id: str | None, keys: Collection[str]) -> frozenset[str]:
    """The subset of project ``keys`` the Jira user ``account_id`` may browse."""
    if not account_id or not keys:
        return frozenset()
    ids = project_ids(session, tenant.id, keys)
    if not ids:
        return frozenset()
    redis = redis_conn.client
    key = cache_key(tenant.id, account_id)
    now = int(time.time())
    cached = _fresh_answers(redis.hgetall(key), now)
    missing = sorted(set(ids.values()) - set(cached))
    if missing:
        client = jira_client_for(tenant)
        answers: dict[int, bool] = {}
        for chunk in _chunks(missing, MAX_PROJECTS_PER_CHECK):
            body = client.post_json(
                PERMISSION_CHECK_PATH,
                {
                    "accountId": account_id,
                    "projectPermissions": [{"permissions": [BROWSE_PROJECTS], "projects": chunk}],
                },
            )
            granted = granted_projects(body)
            answers.update({pid: pid in granted for pid in chunk})
        ttl = runtime().settings.admin_check_cache_seconds
        if ttl > 0:
            # Each answer carries its own expiry; the hash itself goes when its newest answer does.
            pipe = redis.pipeline()
            pipe.hset(key, mapping={str(pid): f"{int(ok)}:{now + ttl}" for pid, ok in answers.items()})
            pipe.expire(key, ttl)
            pipe.execute()
        cached.update(answers)
    return frozenset(k for k, pid in ids.items() if cached.get(pid))


def forget_tenant(tenant_id: int) -> None:
    """Drop every cached answer about a tenant's users (uninstall)."""
    redis = redis_conn.client
    keys = list(redis.scan_iter(match=f"gcj:browse-projects:{tenant_id}:*", count=500))
    if keys:
        redis.delete(*keys)
