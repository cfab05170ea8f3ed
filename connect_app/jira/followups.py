"""What follows an index run on the Jira side: push the repository's changes to Jira's
Development panel, then run its pending smart commits (when the app, not Jira, runs them).

One unique RQ job per repository (``jira-sync-<id>``); a run that changed nothing enqueues
nothing. Jira's 429 re-schedules the job at the reset time instead of failing it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from redis.exceptions import RedisError
from rq import Queue

from connect_app.errors import RateLimited
from connect_app.extensions import db, redis_conn
from connect_app.indexing import queueing
from connect_app.jira.devinfo import push_repository_changes
from connect_app.jira.smart_commits import run_smart_commits
from connect_app.models import RunStatus, Trigger, utcnow

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


def after_index(result: Mapping[str, Any], trigger: str) -> bool:
    """Enqueue the Jira sync for a finished index run; True when a job was enqueued.
    Never raises: the index run is done whatever happens here (the next run retries)."""
    if not needs_sync(result, trigger):
        return False
    repository_id = int(result["repository_id"])
    try:
        return queueing.enqueue_unique(
            redis_conn.client,
            queueing.MAINTENANCE_QUEUE,
            JOB,
            (repository_id, trigger == Trigger.INITIAL.value),
            job_id(repository_id),
            timeout=TIMEOUT_SECONDS,
            description=f"send repository {repository_id} to Jira",
        )
    except RedisError:
        log.warning("could not enqueue the Jira sync of repository %s (Redis unavailable)", repository_id)
        return False


def sync_repository(repository_id: int, backfill: bool) -> dict[str, Any]:
    """The job body: Development panel push, then smart commits."""
    session = db.session()
    try:
        devinfo = push_repository_changes(session, repository_id, backfill=backfill)
        smart = run_smart_commits(session, repository_id)
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
