"""What Jira's Development panel holds follows what is switched on.

    request_reconcile(integration_id) -> bool        after a committed change (raises RedisError)
    reconcile(session, integration_id) -> Reconciled  the job body (``workers.repository_jobs``)
    hidden_reason(integration, tenant) / repository_hidden_reason(repo) -> str | None

A :class:`~connect_app.models.DevinfoRepositoryState` row exists exactly while Jira may hold a
repository's data: ``push_repository`` creates it before its first request, and deleting the
data here deletes it. One pass, under the integration's lock
(:mod:`connect_app.indexing.followup_jobs`), then needs only the rows:

* the integration is hidden (disabled, or its Development panel feature switched off) and any
  of its repositories has a state row: ``DELETE bulkByProperties?integrationId=<id>``, then
  every state row of the integration goes;
* a repository is hidden (disabled, or gone from the host's listing) and has a state row:
  ``DELETE repository/<id>`` (``devinfo.delete_repository`` drops the row);
* a repository is shown, indexed at least once, and has no state row (enabled again, restored,
  the feature switched back on): its Jira sync job is enqueued as a backfill -- a full push
  with ``preventTransitions``, so nothing already done fires again.

Deleting an integration is :func:`connect_app.jira.followups.after_integration_deleted`; an
uninstalled site needs nothing (Jira drops the app's data). Jira unavailable or rate limiting:
what was done is kept, the job raises :class:`JiraNotReady` and RQ retries it. Every deletion
and backfill goes to the integration's log (source ``devinfo``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connect_app.errors import AppError, HostUnavailable, RateLimited
from connect_app.indexing import followup_jobs
from connect_app.jira.devinfo import delete_integration, delete_repository
from connect_app.jira.user_lookup import JiraApi
from connect_app.models import (
    DevinfoRepositoryState,
    EventLevel,
    EventSource,
    Integration,
    IntegrationStatus,
    Repository,
    Tenant,
)
from connect_app.services.integration_log import record_event
from connect_app.services.integration_settings import Feature, feature_enabled

log = logging.getLogger(__name__)

KIND = "jira-visibility"
JOB = "workers.repository_jobs.sync_jira_visibility"
JOB_TIMEOUT_SECONDS = 15 * 60


class JiraNotReady(AppError):
    """Jira could not take the deletion now (unavailable, rate limited); the job is retried."""

    code = "jira_not_ready"
    status = 503


def hidden_reason(integration: Integration) -> str | None:
    """Why Jira should hold none of the integration's data (None: it should hold it)."""
    if integration.status == IntegrationStatus.DISABLED.value:
        return "the integration is disabled"
    if not feature_enabled(integration, Feature.DEVELOPMENT_PANEL):
        return "sending to Jira's Development panel is switched off"
    return None


def repository_hidden_reason(repo: Repository) -> str | None:
    return repo.inactive_reason()


def request_reconcile(integration_id: int) -> bool:
    return followup_jobs.request(
        KIND,
        JOB,
        integration_id,
        timeout=JOB_TIMEOUT_SECONDS,
        description=f"bring Jira's Development panel in line with integration {integration_id}",
    )


@dataclass
class Reconciled:
    integration_id: int
    integration_removed: bool = False
    repositories_removed: list[int] = field(default_factory=list)
    backfills: list[int] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "integration_id": self.integration_id,
            "status": "skipped" if self.skipped else "failed" if self.error else "done",
            "integration_removed": self.integration_removed,
            "repositories_removed": len(self.repositories_removed),
            "backfills": len(self.backfills),
            "error": self.error or self.skipped,
        }


def reconcile(session: Session, integration_id: int, *, client: JiraApi | None = None) -> Reconciled:
    """One pass (see the module docstring). Raises :class:`JiraNotReady` after logging when Jira
    is unavailable or rate limiting; records other refusals in the log without raising."""
    result = Reconciled(integration_id)
    with followup_jobs.integration_lock(KIND, integration_id, timeout=JOB_TIMEOUT_SECONDS):
        session.rollback()  # read the rows as they are now, after whoever held the lock
        integration = session.get(Integration, integration_id, populate_existing=True)
        tenant = session.get(Tenant, integration.tenant_id) if integration is not None else None
        if integration is None or tenant is None:
            result.skipped = "no such integration"
            return result
        if not tenant.enabled:
            result.skipped = "Git Connect is disabled on this Jira site"
            return result
        try:
            _reconcile(session, integration, client, result)
        except AppError as e:
            session.rollback()
            result.error = e.message
            _failed(session, integration, e)
            session.commit()
            if isinstance(e, HostUnavailable | RateLimited):
                raise JiraNotReady(f"Jira did not take the change: {e.message}") from e
    return result


@dataclass
class _Plan:
    hidden_because: str | None  # the whole integration is hidden
    pushed: set[int]  # repositories with a state row (Jira may hold their data)
    hidden: list[tuple[int, str, str]] = field(default_factory=list)  # (id, name, why) to delete
    shown: list[tuple[int, str]] = field(default_factory=list)  # (id, name) to send from the start

    @property
    def has_work(self) -> bool:
        if self.hidden_because is not None:
            return bool(self.pushed)
        return bool(self.hidden or self.shown)


def _plan(session: Session, integration: Integration) -> _Plan:
    pushed = set(
        session.scalars(
            select(DevinfoRepositoryState.repository_id).where(DevinfoRepositoryState.integration_id == integration.id)
        )
    )
    plan = _Plan(hidden_reason(integration), pushed)
    if plan.hidden_because is not None:
        return plan
    for repo in session.scalars(select(Repository).where(Repository.integration_id == integration.id)):
        reason = repository_hidden_reason(repo)
        if repo.id in pushed and reason is not None:
            plan.hidden.append((repo.id, repo.name, reason))
        elif repo.id not in pushed and reason is None and repo.last_indexed_at is not None:
            plan.shown.append((repo.id, repo.name))
    return plan


def needs_reconcile(session: Session, integration: Integration) -> bool:
    """Whether a pass would change anything (database only)."""
    return _plan(session, integration).has_work


def _reconcile(session: Session, integration: Integration, client: JiraApi | None, result: Reconciled) -> None:
    tenant_id, integration_id = integration.tenant_id, integration.id
    plan = _plan(session, integration)
    session.rollback()
    if plan.hidden_because is not None:
        if not plan.pushed:
            return
        delete_integration(session, tenant_id=tenant_id, integration_id=integration_id, client=client)
        session.execute(delete(DevinfoRepositoryState).where(DevinfoRepositoryState.integration_id == integration_id))
        result.integration_removed = True
        _event(
            session,
            tenant_id,
            integration_id,
            f"Removed this integration's data from Jira's Development panel: {plan.hidden_because}. "
            "It is sent again from the start when that changes.",
            "devinfo_integration_removed",
            reason=plan.hidden_because,
        )
        session.commit()
        return
    for repository_id, name, reason in plan.hidden:
        delete_repository(session, tenant_id=tenant_id, repository_id=repository_id, client=client)
        result.repositories_removed.append(repository_id)
        _event(
            session,
            tenant_id,
            integration_id,
            f"Removed {name} from Jira's Development panel: {reason}.",
            "devinfo_repository_removed",
            repository_id=repository_id,
            reason=reason,
        )
        session.commit()
    _backfill(session, tenant_id, integration_id, plan.shown, result)


def _backfill(
    session: Session, tenant_id: int, integration_id: int, repos: list[tuple[int, str]], result: Reconciled
) -> None:
    from connect_app.jira.followups import request_sync

    for repository_id, _name in repos:
        request_sync(repository_id, backfill=True)  # RedisError: the job fails and RQ retries it
        result.backfills.append(repository_id)
    if not repos:
        return
    names = [n for _, n in repos]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    _event(
        session,
        tenant_id,
        integration_id,
        f"Sending {shown} to Jira's Development panel again from the start "
        "(as a backfill: no transitions or smart commits fire).",
        "devinfo_backfill",
        repository_id=repos[0][0] if len(repos) == 1 else None,
        repositories=names,
    )
    session.commit()


def _failed(session: Session, integration: Integration, error: AppError) -> None:
    retry = isinstance(error, HostUnavailable | RateLimited)
    _event(
        session,
        integration.tenant_id,
        integration.id,
        f"Could not update Jira's Development panel ({error.message}); "
        + ("trying again shortly." if retry else "it is tried again at the next change."),
        "devinfo_remove_failed",
        level=EventLevel.WARNING,
        error=error.message,
    )


def _event(
    session: Session,
    tenant_id: int,
    integration_id: int,
    message: str,
    code: str,
    *,
    level: EventLevel = EventLevel.INFO,
    repository_id: int | None = None,
    **detail: Any,
) -> None:
    record_event(
        session,
        tenant_id=tenant_id,
        integration_id=integration_id,
        level=level,
        source=EventSource.DEVINFO,
        message=message,
        repository_id=repository_id,
        detail={"code": code, **detail},
    )
