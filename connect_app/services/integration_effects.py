"""What an admin's change sets off outside the database: our webhooks on the host
(:mod:`connect_app.indexing.webhook_sync`) and the data in Jira's Development panel
(:mod:`connect_app.jira.visibility`), both in background jobs, and a line in the
integration's log (source ``settings``) saying what changed and what follows.

    Switches.of(integration)                       before the change
    after_integration_change(session, integration, before, ...) -> bool
    after_repository_change(session, repo, was_enabled) -> bool

Call them after the change is committed; they commit the log lines, then enqueue. They return
False when the queue (Redis) is unreachable: the change stands, the host and Jira catch up at
the integration's next change or discovery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from connect_app.indexing import followup_jobs, webhook_sync
from connect_app.jira import visibility
from connect_app.models import EventLevel, EventSource, Integration, IntegrationStatus, Repository
from connect_app.security.auth import acting_account
from connect_app.services.integration_log import record_event
from connect_app.services.integration_settings import Feature, feature_enabled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Switches:
    enabled: bool
    webhooks: bool
    development_panel: bool
    smart_commits: bool

    @classmethod
    def of(cls, integration: Integration) -> Switches:
        return cls(
            enabled=integration.status != IntegrationStatus.DISABLED.value,
            webhooks=feature_enabled(integration, Feature.WEBHOOKS),
            development_panel=feature_enabled(integration, Feature.DEVELOPMENT_PANEL),
            smart_commits=feature_enabled(integration, Feature.SMART_COMMITS),
        )


def _messages(before: Switches, after: Switches) -> list[tuple[str, str]]:
    """(code, message) for each switch that changed."""
    out: list[tuple[str, str]] = []
    if before.enabled != after.enabled:
        out.append(
            ("integration_enabled", "Integration enabled: indexing resumes, webhooks are registered again and "
             "its data is sent to Jira's Development panel again from the start.")
            if after.enabled
            else ("integration_disabled", "Integration disabled: indexing stops, deliveries are acknowledged and "
                  "ignored, our webhooks are deleted from the host and its data from Jira's Development panel.")
        )  # fmt: skip
    if before.webhooks != after.webhooks:
        out.append(
            ("webhooks_on", "Webhooks switched on: they are registered on the enabled repositories.")
            if after.webhooks
            else ("webhooks_off", "Webhooks switched off: ours are deleted from the host and deliveries are "
                  "acknowledged and ignored; repositories are indexed on their schedule.")
        )  # fmt: skip
    if before.development_panel != after.development_panel:
        out.append(
            ("development_panel_on", "Development panel switched on: the indexed repositories are sent to Jira "
             "from the start (no transitions or smart commits fire for them).")
            if after.development_panel
            else ("development_panel_off", "Development panel switched off: this integration's data is deleted "
                  "from Jira's Development panel.")
        )  # fmt: skip
    if before.smart_commits != after.smart_commits:
        out.append(
            ("smart_commits_on", "Smart commits switched on: commands in new commits are run.")
            if after.smart_commits
            else ("smart_commits_off", "Smart commits switched off: commands in commits are no longer run.")
        )
    return out


def after_integration_change(
    session: Session,
    integration: Integration,
    before: Switches,
    *,
    repositories_changed: bool = False,
    credentials_changed: bool = False,
) -> bool:
    after = Switches.of(integration)
    for code, message in _messages(before, after):
        _event(session, integration, message, code)
    session.commit()
    hooks = before.enabled != after.enabled or before.webhooks != after.webhooks
    hooks = hooks or repositories_changed or credentials_changed
    jira = before.enabled != after.enabled or before.development_panel != after.development_panel
    jira = jira or repositories_changed
    return _request(integration, hooks=hooks, jira=jira)


def after_repository_change(session: Session, repo: Repository, was_enabled: bool) -> bool:
    if repo.enabled == was_enabled:
        return True
    integration = session.get(Integration, repo.integration_id)
    if integration is None:
        return True
    message = (
        f"Repository {repo.name} enabled: it is indexed again, gets our webhook and is sent to Jira's "
        "Development panel again from the start."
        if repo.enabled
        else f"Repository {repo.name} disabled: its index is kept, its webhook is deleted from the host and its "
        "data from Jira's Development panel."
    )
    _event(
        session,
        integration,
        message,
        "repository_enabled" if repo.enabled else "repository_disabled",
        repository_id=repo.id,
    )
    session.commit()
    return _request(integration, hooks=True, jira=True)


def follow_up_job_ids(integration_id: int) -> list[str]:
    """The integration's follow-up jobs (both slots of each kind), to cancel when it is deleted."""
    ids = [followup_jobs.job_id(kind, integration_id) for kind in (webhook_sync.KIND, visibility.KIND)]
    return [slot for job_id in ids for slot in (job_id, job_id + followup_jobs.SECOND_SLOT)]


def _request(integration: Integration, *, hooks: bool, jira: bool) -> bool:
    integration_id = integration.id
    try:
        if hooks:
            webhook_sync.request_sync(integration)
        if jira:
            visibility.request_reconcile(integration_id)
    except RedisError:
        log.warning("Redis unreachable: webhooks and Jira of integration %s catch up later", integration_id)
        return False
    return True


def _event(
    session: Session, integration: Integration, message: str, code: str, *, repository_id: int | None = None
) -> None:
    record_event(
        session,
        tenant_id=integration.tenant_id,
        integration_id=integration.id,
        level=EventLevel.INFO,
        source=EventSource.SETTINGS,
        message=message,
        repository_id=repository_id,
        detail={"code": code, **({"by": by} if (by := acting_account()) else {})},  # the admin, when in a request
    )
