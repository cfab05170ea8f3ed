"""Keep our webhooks on the host in line with what the admin switched on.

    request_sync(integration) -> bool                   after a committed change (raises RedisError)
    needs_sync(session, integration) -> bool           whether a pass would change anything
    sync_webhooks(session, integration_id) -> WebhookSync   the job body (``workers.repository_jobs``)

A repository should carry our webhook when the Jira site and the integration are enabled, the
integration's ``webhooks`` feature is on, and the repository is enabled and visible to the
credentials -- however it got there (discovery, the wizard's pick, ``POST .../repositories``).
Every other webhook of ours (``Repository.webhook_id``) is deleted: feature switched off,
repository or integration disabled, repository gone from the host's listing. Disconnecting
deletes webhooks itself (``services.integration_admin.delete_integration``).

One pass per job, one host client per pass, under the integration's lock
(:mod:`connect_app.indexing.followup_jobs`). Deletions first, then registrations. The host
refusing (no admin rights on a repository) marks the integration "manual" (the admin page then
shows the URL and secret to paste) and, after :data:`MAX_REFUSALS` refusals in a row, the pass
stops asking: the credential lacks the right for all of them. A host that is down or rate
limited ends the pass; the job then raises :class:`HostNotReady` and RQ retries it. What a pass
did goes to the integration's log (source ``webhook``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import AppError
from connect_app.hosts.base import GitHost
from connect_app.hosts.registry import provider_info
from connect_app.indexing import followup_jobs
from connect_app.indexing.webhook_setup import (
    MANUAL_REASON,
    HookOutcome,
    close_host,
    delete_with,
    register_with,
    supports_webhooks,
)
from connect_app.integrations import host_for
from connect_app.models import (
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

KIND = "webhooks"
JOB = "workers.repository_jobs.sync_webhooks"
JOB_TIMEOUT_SECONDS = 30 * 60
MAX_REFUSALS = 3
NAMES_IN_MESSAGE = 3


class HostNotReady(AppError):
    """The host could not be reached (or rate limited us); the job is retried."""

    code = "host_not_ready"
    status = 503


def off_reason(integration: Integration, tenant: Tenant | None) -> str | None:
    """Why none of the integration's repositories should carry our webhook (None: they should)."""
    if tenant is None or not tenant.enabled:
        return "Git Connect is disabled on this Jira site"
    if integration.status == IntegrationStatus.DISABLED.value:
        return "the integration is disabled"
    if not feature_enabled(integration, Feature.WEBHOOKS):
        return "webhooks are switched off for this integration"
    return None


def repository_off_reason(repo: Repository) -> str | None:
    return repo.inactive_reason()


@dataclass
class _Plan:
    add: list[Repository] = field(default_factory=list)
    remove: list[tuple[Repository, str]] = field(default_factory=list)


def _plan(session: Session, integration: Integration) -> _Plan:
    plan = _Plan()
    if not supports_webhooks(integration):
        return plan
    reason = off_reason(integration, session.get(Tenant, integration.tenant_id))
    # Refused credentials cannot create hooks; deleting is still worth a try.
    may_add = reason is None and integration.status != IntegrationStatus.AUTH_FAILED.value
    repos = session.scalars(
        select(Repository).where(Repository.integration_id == integration.id).order_by(Repository.id)
    )
    for repo in repos:
        why = reason or repository_off_reason(repo)
        if repo.webhook_id and why:
            plan.remove.append((repo, why))
        elif not repo.webhook_id and not why and may_add:
            plan.add.append(repo)
    return plan


def needs_sync(session: Session, integration: Integration) -> bool:
    plan = _plan(session, integration)
    return bool(plan.add or plan.remove)


def request_sync(integration: Integration) -> bool:
    """Enqueue a pass for the integration (see followup_jobs); False for hosts without webhooks."""
    if not supports_webhooks(integration):
        return False
    return followup_jobs.request(
        KIND,
        JOB,
        integration.id,
        timeout=JOB_TIMEOUT_SECONDS,
        description=f"bring the webhooks of integration {integration.id} in line with its settings",
    )


# --------------------------------------------------------------------------- the pass


@dataclass
class WebhookSync:
    integration_id: int
    registered: list[str] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)  # (repository, why)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (repository, host's words)
    not_deleted: list[tuple[str, str]] = field(default_factory=list)
    not_tried: int = 0
    unavailable: str | None = None  # the host could not be reached: retried
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "integration_id": self.integration_id,
            "status": "skipped" if self.skipped else "incomplete" if self.unavailable else "done",
            "registered": len(self.registered),
            "deleted": len(self.deleted),
            "refused": len(self.refused),
            "not_deleted": len(self.not_deleted),
            "not_tried": self.not_tried,
            "error": self.unavailable or self.skipped,
        }


def sync_webhooks(session: Session, integration_id: int) -> WebhookSync:
    """One pass (see the module docstring). Commits as it goes; never raises host errors."""
    result = WebhookSync(integration_id)
    with followup_jobs.integration_lock(KIND, integration_id, timeout=JOB_TIMEOUT_SECONDS):
        session.rollback()  # read the rows as they are now, after whoever held the lock
        integration = session.get(Integration, integration_id, populate_existing=True)
        if integration is None:
            result.skipped = "no such integration"
            return result
        plan = _plan(session, integration)
        if not plan.add and not plan.remove:
            session.rollback()
            return result
        host_name = provider_info(integration.provider).name
        manual_before = (integration.features or {}).get(MANUAL_REASON)
        try:
            host = host_for(integration)
            session.commit()  # an OAuth token refreshed on the way is kept
        except AppError as e:
            session.rollback()
            result.unavailable = e.message
        else:
            try:
                _delete_all(session, host, plan.remove, result)
                if result.unavailable is None:
                    _register_all(session, host, integration, plan.add, result)
            finally:
                close_host(host)
        _record(session, integration, host_name, result, manual_before)
        session.commit()
    return result


def _delete_all(session: Session, host: GitHost, todo: list[tuple[Repository, str]], result: WebhookSync) -> None:
    for repo, why in todo:
        name = repo.name
        outcome = delete_with(session, host, repo)
        if outcome.done:
            result.deleted.append((name, why))
        elif outcome.refused:
            result.not_deleted.append((name, outcome.error or "refused"))
        else:
            result.unavailable = outcome.error or "the host did not answer"
            return


def _register_all(
    session: Session, host: GitHost, integration: Integration, todo: list[Repository], result: WebhookSync
) -> None:
    in_a_row = 0
    for index, repo in enumerate(todo):
        name = repo.name
        outcome: HookOutcome = register_with(session, host, integration, repo)
        if outcome.done:
            result.registered.append(name)
            in_a_row = 0
        elif outcome.refused:
            result.refused.append((name, outcome.error or "refused"))
            in_a_row += 1
            if in_a_row >= MAX_REFUSALS:
                result.not_tried = len(todo) - index - 1
                return
        else:
            result.unavailable = outcome.error or "the host did not answer"
            return


# --------------------------------------------------------------------------- the log


def names(items: Sequence[str], limit: int = NAMES_IN_MESSAGE) -> str:
    shown = list(items[:limit])
    rest = len(items) - len(shown)
    if rest > 0:
        return f"{', '.join(shown)} and {rest} more"
    if len(shown) > 1:
        return f"{', '.join(shown[:-1])} and {shown[-1]}"
    return shown[0] if shown else ""


def _event(
    session: Session, integration: Integration, level: EventLevel, message: str, code: str, **detail: Any
) -> None:
    record_event(
        session,
        tenant_id=integration.tenant_id,
        integration_id=integration.id,
        level=level,
        source=EventSource.WEBHOOK,
        message=message,
        detail={"code": code, **detail},
    )


def _record(
    session: Session, integration: Integration, host_name: str, result: WebhookSync, manual_before: Any
) -> None:
    if result.deleted:
        by_reason: dict[str, list[str]] = {}
        for name, why in result.deleted:
            by_reason.setdefault(why, []).append(name)
        for why, repos in by_reason.items():
            noun = "Webhook" if len(repos) == 1 else "Webhooks"
            _event(
                session,
                integration,
                EventLevel.INFO,
                f"{noun} deleted from {names(repos)} on {host_name}: {why}.",
                "webhook_deleted",
                repositories=repos,
                reason=why,
            )
    if result.not_deleted:
        repos = [n for n, _ in result.not_deleted]
        _event(
            session,
            integration,
            EventLevel.WARNING,
            f"{host_name} did not let us delete our webhook from {names(repos)} ({result.not_deleted[0][1]}). "
            "Delete it on the host; until then its deliveries are acknowledged and ignored.",
            "webhook_not_deleted",
            repositories=repos,
            reasons=[r for _, r in result.not_deleted],
        )
    if result.registered:
        noun = "Webhook" if len(result.registered) == 1 else "Webhooks"
        _event(
            session,
            integration,
            EventLevel.INFO,
            f"{noun} registered on {names(result.registered)} on {host_name}: pushes and pull requests "
            "are indexed as they happen.",
            "webhook_registered",
            repositories=result.registered,
        )
    if result.refused:
        reason = result.refused[-1][1]
        if result.registered or reason != manual_before:  # the same refusal again: said already
            repos = [n for n, _ in result.refused]
            more = f" ({result.not_tried} more repositories were not tried)" if result.not_tried else ""
            _event(
                session,
                integration,
                EventLevel.WARNING,
                f"{host_name} refused to create our webhook on {names(repos)}{more}: {reason}. "
                "Add it by hand with the URL and secret in the integration's settings, or use credentials "
                "with admin rights on the repositories; until then changes are picked up on the regular schedule.",
                "webhook_refused",
                repositories=repos,
                reason=reason,
                not_tried=result.not_tried,
            )
    if result.unavailable:
        _event(
            session,
            integration,
            EventLevel.WARNING,
            f"Could not reach {host_name} to update our webhooks ({result.unavailable}); trying again shortly.",
            "webhook_host_unavailable",
            error=result.unavailable,
        )
