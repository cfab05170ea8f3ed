"""Rows as the admin API's JSON. Credentials never appear; the webhook secret only in the
single-integration view (the admin pastes it on the host when we could not register the hook)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from connect_app.hosts.registry import provider_info
from connect_app.indexing.webhook_setup import MANUAL, MANUAL_REASON, webhook_url
from connect_app.integrations import webhook_secret
from connect_app.models import IndexRun, Integration, IntegrationStatus, Repository, RunStatus
from connect_app.services.admin_stats import Counters, IntegrationStats, IntervalHint, integration_status
from connect_app.services.integration_admin import Created, Deleted, Reindexed, Updated
from connect_app.services.integration_settings import (
    branch_name_template,
    features_of,
    smart_commit_max_age_days,
    smart_commits_by,
)
from connect_app.services.run_admin import Cleared, RunRow


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def millis(delta: timedelta | None) -> int | None:
    return None if delta is None else max(0, int(delta.total_seconds() * 1000))


def counters_payload(c: Counters) -> dict[str, int]:
    return {"commits": c.commits, "branches": c.branches, "pull_requests": c.pull_requests}


def settings_payload(integration: Integration) -> dict[str, Any]:
    return {
        "require_user_pat": integration.require_user_pat,
        "enforce_permissions": integration.enforce_permissions,
        "project_keys": list(integration.project_keys or []),
        "reindex_interval_minutes": integration.reindex_interval_minutes,
        "features": features_of(integration),
        "branch_name_template": branch_name_template(integration),
        # Who runs smart commits as things stand ("jira" needs the Development panel on).
        "smart_commits_by": smart_commits_by(integration).value,
        "smart_commits_max_age_days": smart_commit_max_age_days(integration),
    }


def _run_brief(run: IndexRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "kind": run.kind,
        "trigger": run.trigger,
        "status": run.status,
        "queued_at": iso(run.queued_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "error": run.error,
    }


def integration_payload(
    integration: Integration, stats: IntegrationStats, *, detail: bool = False, hint: IntervalHint | None = None
) -> dict[str, Any]:
    """``detail`` (the single-integration view) adds the webhook secret and, with ``hint``,
    the reindex interval recommended from recent run durations."""
    info = provider_info(integration.provider)
    status, status_detail = integration_status(integration, stats)
    features = integration.features or {}
    webhook: dict[str, Any] = {
        "url": webhook_url(integration),
        "manual": bool(features.get(MANUAL)),
        "manual_reason": features.get(MANUAL_REASON),
    }
    if detail:
        webhook["secret"] = webhook_secret(integration)
    extra: dict[str, Any] = {}
    if hint is not None:
        extra["reindex_interval_hint"] = {
            "recommended_minutes": hint.minutes,
            "based_on_runs": hint.runs,
            "average_run_seconds": hint.average_run_seconds,
        }
    return {
        "id": integration.id,
        "provider": integration.provider,
        "provider_name": info.name,
        "display_name": integration.display_name,
        "base_url": integration.base_url,
        "namespace": integration.namespace,
        "auth_type": integration.auth_type,
        "account_name": integration.account_name,
        "enabled": integration.status != IntegrationStatus.DISABLED.value,
        "status": status,
        "status_detail": status_detail,
        # The host refused the stored credentials: the page offers "Sign in again" / "Replace token".
        "auth_failed": integration.status == IntegrationStatus.AUTH_FAILED.value,
        "repository_selection": integration.repository_selection,
        "repository_count": stats.repositories,
        "repositories": {
            "total": stats.repositories,
            "enabled": stats.enabled_repositories,
            "removed": stats.removed_repositories,
            "by_status": dict(stats.by_status),
        },
        "counters": counters_payload(stats.counters),
        "last_indexed_at": iso(stats.last_indexed_at),
        "last_discovered_at": iso(integration.last_discovered_at),
        "last_discovery": _run_brief(stats.discovery),
        "features": features_of(integration),
        "settings": settings_payload(integration),
        "webhook": webhook,
        "created_at": iso(integration.created_at),
        "created_by": integration.created_by,
        **extra,
    }


def repository_payload(repo: Repository, counters: Counters, active: IndexRun | None) -> dict[str, Any]:
    return {
        "id": repo.id,
        "integration_id": repo.integration_id,
        "external_id": repo.external_id,
        "name": repo.name,
        "namespace": repo.namespace,
        "web_url": repo.web_url,
        "clone_url": repo.clone_url,
        "default_branch": repo.default_branch,
        "enabled": repo.enabled,
        "project_keys": list(repo.project_keys or []),
        "status": repo.status,
        "last_error": repo.last_error,
        "last_indexed_at": iso(repo.last_indexed_at),
        "next_index_at": iso(repo.next_index_at),
        "reindex_requested_at": iso(repo.reindex_requested_at),
        "removed_at": iso(repo.removed_at),
        "webhook_registered": repo.webhook_id is not None,
        "counters": counters_payload(counters),
        "active_run": _run_brief(active),
    }


def run_payload(row: RunRow, now: datetime) -> dict[str, Any]:
    """``delay_ms``: time queued (so far, for a queued run); ``duration_ms``: time running
    (so far, for a running run)."""
    run = row.run
    waiting_until = run.started_at or (now if run.status == RunStatus.QUEUED.value else None)
    running_until = run.finished_at or (now if run.status == RunStatus.RUNNING.value else None)
    return {
        "id": run.id,
        "integration_id": run.integration_id,
        "integration_name": row.integration_name,
        "repository_id": run.repository_id,
        "repository_name": row.repository_name,
        "kind": run.kind,
        "trigger": run.trigger,
        "status": run.status,
        "queued_at": iso(run.queued_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "delay_ms": millis(waiting_until - run.queued_at) if waiting_until else None,
        "duration_ms": millis(running_until - run.started_at) if running_until and run.started_at else None,
        "attempts": run.attempts,
        "counts": {
            "commits_seen": run.commits_seen,
            "commits_linked": run.commits_linked,
            "branches_seen": run.branches_seen,
            "pull_requests_seen": run.pull_requests_seen,
            "links_created": run.links_created,
            "repositories_seen": run.repositories_seen,
        },
        "rate_limited_until": iso(run.rate_limited_until),
        "error": run.error,
    }


def created_payload(result: Created, stats: IntegrationStats) -> dict[str, Any]:
    return {
        **integration_payload(result.integration, stats),
        "repositories_added": result.repositories_added,
        "indexing_started": result.indexing_started,
        "note": result.note,
    }


def updated_payload(result: Updated, stats: IntegrationStats) -> dict[str, Any]:
    return {
        **integration_payload(result.integration, stats),
        "repositories_added": result.repositories_added,
        "repositories_disabled": result.repositories_disabled,
        "discovery_queued": result.discovery_queued,
        "note": result.note,
    }


def reindexed_payload(result: Reindexed) -> dict[str, Any]:
    return {
        "requested": result.requested,
        "enqueued": result.enqueued,
        "discovery_queued": result.discovery_queued,
        "note": result.note,
    }


def deleted_payload(result: Deleted) -> dict[str, Any]:
    return {
        "id": result.integration_id,
        "deleted": True,
        "repositories_removed": result.repositories,
        "jobs_cancelled": result.jobs_cancelled,
        "webhooks": {
            "deleted": sum(1 for o in result.webhooks if o.deleted),
            "failed": [
                {
                    "repository_id": o.repository_id,
                    "repository_name": o.repository_name,
                    "webhook_id": o.webhook_id,
                    "error": o.error,
                }
                for o in result.webhooks
                if not o.deleted
            ],
        },
    }


def cleared_payload(result: Cleared) -> dict[str, Any]:
    return {
        "cancelled": result.runs_cancelled,
        "jobs_cancelled": result.jobs_cancelled,
        "already_started": result.already_started,
    }
