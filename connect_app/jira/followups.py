"""What follows an index run on the Jira side: push the repository's changes to Jira's
Development panel, then run its pending smart commits (when the app, not Jira, runs them).

One unique RQ job per repository (``jira-sync-<id>``); a run that changed nothing enqueues
nothing, and neither does one whose integration is disabled or has both the Development panel
and smart commits switched off (webhook-triggered runs included: they end here too). The job
itself checks again when it runs (the admin may have switched something off meanwhile): the
push skips a hidden repository (``devinfo.skip_reason``), smart commits skip when switched off
(``smart_commits.smart_commit_mode``). A repository hidden while its push was running is handed
to :mod:`connect_app.jira.visibility`, which deletes what the push sent. Jira's 429
re-schedules the job at the reset time instead of failing it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy.orm import Session

from connect_app.errors import RateLimited
from connect_app.extensions import db, redis_conn
from connect_app.indexing import queueing
from connect_app.jira.devinfo import push_repository_changes
from connect_app.jira.smart_commits import run_smart_commits
from connect_app.models import Integration, IntegrationStatus, Repository, RunStatus, Trigger, utcnow
from connect_app.services.integration_settings import Feature, feature_enabled

log = logging.getLogger(__name__)

JOB = "workers.jobs.sync_to_jira"
TIMEOUT_SECONDS = 30 * 60


def job_id(repository_id: int) -> str:
    return f"jira-sync-{repository_id}"


def needs_sync(result: Mapping[str, Any], trigger: str) -> bool:
    """Only runs that found something (or a first index) have anything to tell Jira."""
    if result.get("status") != RunStatus.DONE.value:
        return False
    if trigger == Trigger.INITIAL.value:
        return True
    return any(int(result.get(k) or 0) > 0 for k in ("commits_seen", "pull_requests_seen", "links_created"))


def jira_work_reason(session: Session, repository_id: int) -> str | None:
    """Why a sync job for this repository would do nothing (None: it has work to do)."""
    repo = session.get(Repository, repository_id)
    integration = session.get(Integration, repo.integration_id) if repo is not None else None
    if repo is None or integration is None:
        return "no such repository"
    if integration.status == IntegrationStatus.DISABLED.value:
        return "the integration is disabled"
    if not feature_enabled(integration, Feature.DEVELOPMENT_PANEL) and not feature_enabled(
        integration, Feature.SMART_COMMITS
    ):
        return "the Development panel and smart commits are switched off"
    return None


def request_sync(repository_id: int, *, backfill: bool) -> bool:
    """Enqueue the repository's Jira sync job (False: one is queued or running already).
    Raises RedisError when Redis is down."""
    return queueing.enqueue_unique(
        redis_conn.client,
        queueing.MAINTENANCE_QUEUE,
        JOB,
        (repository_id, backfill),
        job_id(repository_id),
        timeout=TIMEOUT_SECONDS,
        description=f"send repository {repository_id} to Jira" + (" (backfill)" if backfill else ""),
    )


def after_index(result: Mapping[str, Any], trigger: str) -> bool:
    """Enqueue the Jira sync for a finished index run; True when a job was enqueued.
    Never raises: the index run is done whatever happens here (the next run retries)."""
    if not needs_sync(result, trigger):
        return False
    repository_id = int(result["repository_id"])
    try:
        session = db.session()
        reason = jira_work_reason(session, repository_id)
        session.rollback()
        if reason is not None:
            log.info("no Jira sync for repository %s: %s", repository_id, reason)
            return False
        return request_sync(repository_id, backfill=trigger == Trigger.INITIAL.value)
    except RedisError:
        log.warning("could not enqueue the Jira sync of repository %s (Redis unavailable)", repository_id)
        return False
    except Exception:  # a database hiccup must not fail a finished index run
        log.exception("could not enqueue the Jira sync of repository %s", repository_id)
        return False


def sync_repository(repository_id: int, backfill: bool) -> dict[str, Any]:
    """The job body: Development panel push, then smart commits."""
    session = db.session()
    reason = jira_work_reason(session, repository_id)
    session.rollback()
    if reason is not None:
        return {"status": "skipped", "reason": reason}
    try:
        devinfo = push_repository_changes(session, repository_id, backfill=backfill)
        smart = run_smart_commits(session, repository_id)
        _hidden_meanwhile(session, repository_id)
    except RateLimited as e:
        when = e.reset_at or utcnow() + timedelta(minutes=1)
        Queue(queueing.MAINTENANCE_QUEUE, connection=redis_conn.client).enqueue_at(
            when,
            JOB,
            args=(repository_id, backfill),
            job_id=f"{job_id(repository_id)}-at-{int(when.timestamp())}",
            job_timeout=TIMEOUT_SECONDS,
        )
        return {"status": "rate_limited", "retry_at": when.isoformat()}
    return {"status": "done", "devinfo": devinfo.summary(), "smart_commits": smart.as_dict()}


def _hidden_meanwhile(session: Session, repository_id: int) -> None:
    """Switched off while the push ran: what it sent must go (visibility deletes it)."""
    from connect_app.jira import visibility

    repo = session.get(Repository, repository_id, populate_existing=True)
    integration = session.get(Integration, repo.integration_id, populate_existing=True) if repo else None
    session.rollback()
    if repo is None or integration is None:
        return
    if visibility.hidden_reason(integration) or visibility.repository_hidden_reason(repo):
        try:
            visibility.request_reconcile(integration.id)
        except RedisError:
            log.warning("could not ask for the Jira clean-up of integration %s (Redis unavailable)", integration.id)


REMOVE_JOB = "workers.jobs.remove_integration_from_jira"


def after_integration_deleted(tenant_id: int, integration_id: int) -> bool:
    """Jira keeps what we pushed until told: remove an integration's development information
    (one ``DELETE bulkByProperties``) in the background. Never raises."""
    try:
        return queueing.enqueue_unique(
            redis_conn.client,
            queueing.MAINTENANCE_QUEUE,
            REMOVE_JOB,
            (tenant_id, integration_id),
            f"jira-remove-{integration_id}",
            timeout=10 * 60,
            description=f"remove integration {integration_id} from Jira",
        )
    except RedisError:
        log.warning("could not enqueue removing integration %s from Jira (Redis unavailable)", integration_id)
        return False


def remove_integration(tenant_id: int, integration_id: int) -> dict[str, Any]:
    from connect_app.jira.devinfo import delete_integration

    delete_integration(db.session(), tenant_id=tenant_id, integration_id=integration_id)
    return {"status": "done"}
