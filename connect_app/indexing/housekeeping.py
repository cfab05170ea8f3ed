"""The dispatcher's slower duties (once a minute): discoveries and Jira project refreshes
that are due. Callers hold :func:`~connect_app.indexing.queueing.scheduler_lock`.

* Discovery: an integration never discovered, or one with "all future repositories"
  whose last discovery is older than :data:`DISCOVERY_MAX_AGE`; not again within
  :data:`DISCOVERY_RETRY` of the last attempt (a host that is down is not hammered).
* Jira projects: tenants with an active integration whose project list is stale by
  ``connect_app.jira.projects``' rule (empty, or refreshed longer ago than its
  ``DEFAULT_MAX_AGE``), through ``workers.jobs.refresh_jira_projects``, at most once per
  :data:`PROJECTS_RETRY` each (a Jira that fails is not hammered).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from connect_app.indexing import queueing, runs
from connect_app.jira.licensing import tenant_may_index
from connect_app.models import (
    IndexRun,
    Integration,
    IntegrationStatus,
    JiraProject,
    RepositorySelection,
    RunKind,
    Tenant,
    Trigger,
)

log = logging.getLogger(__name__)

DISCOVERY_MAX_AGE = timedelta(hours=6)
DISCOVERY_RETRY = timedelta(minutes=15)
PROJECTS_MAX_AGE = timedelta(hours=1)  # connect_app.jira.projects.DEFAULT_MAX_AGE when present
PROJECTS_RETRY = timedelta(minutes=15)
PROJECTS_ATTEMPT_PREFIX = "gcj:jira-projects-attempt:"


def run(session: Session, conn: Redis, now: datetime) -> int:
    return enqueue_due_discoveries(session, conn, now) + enqueue_project_refreshes(session, conn, now)


def enqueue_discovery(
    session: Session, conn: Redis, integration: Integration, trigger: Trigger, *, at_front: bool
) -> bool:
    """A DISCOVER IndexRun and its unique job ``discover-<integration id>``; False when
    one is queued or running already. Raises RedisError (the run row removed again)."""
    job_id = queueing.discover_job_id(integration.id)
    if not queueing.clear_finished_job(conn, job_id):
        return False
    run = runs.queue_run(
        session,
        tenant_id=integration.tenant_id,
        integration_id=integration.id,
        repository_id=None,
        trigger=trigger,
        kind=RunKind.DISCOVER,
        job_id=job_id,
    )
    session.commit()
    try:
        ok = queueing.enqueue_unique(
            conn,
            queueing.INDEXING_QUEUE,
            queueing.DISCOVER_FUNC,
            (integration.id, run.id),
            job_id,
            timeout=queueing.DISCOVER_JOB_TIMEOUT,
            at_front=at_front,
            description=f"discover repositories of integration {integration.id} ({trigger.value})",
        )
    except RedisError:
        _drop(session, run.id)
        raise
    if not ok:
        _drop(session, run.id)
    return ok


def _drop(session: Session, run_id: int) -> None:
    session.rollback()
    session.execute(delete(IndexRun).where(IndexRun.id == run_id))
    session.commit()


def enqueue_due_discoveries(session: Session, conn: Redis, now: datetime) -> int:
    tried_recently = (
        select(IndexRun.id)
        .where(
            IndexRun.integration_id == Integration.id,
            IndexRun.kind == RunKind.DISCOVER.value,
            IndexRun.queued_at > now - DISCOVERY_RETRY,
        )
        .exists()
    )
    due = session.scalars(
        select(Integration)
        .join(Tenant, Tenant.id == Integration.tenant_id)
        .where(
            Integration.status == IntegrationStatus.ACTIVE.value,
            Tenant.enabled.is_(True),
            tenant_may_index(),  # ENABLE_LICENSING: not a site without an active licence
            or_(
                Integration.last_discovered_at.is_(None),
                and_(
                    Integration.repository_selection == RepositorySelection.ALL_FUTURE.value,
                    Integration.last_discovered_at < now - DISCOVERY_MAX_AGE,
                ),
            ),
            ~tried_recently,
        )
        .order_by(Integration.last_discovered_at.is_not(None), Integration.id)
    ).all()
    enqueued = 0
    for integration in due:
        first = integration.last_discovered_at is None
        trigger = Trigger.INITIAL if first else Trigger.SCHEDULED
        if enqueue_discovery(session, conn, integration, trigger, at_front=first):
            enqueued += 1
    return enqueued


def enqueue_project_refreshes(session: Session, conn: Redis, now: datetime) -> int:
    try:
        from connect_app.jira import projects
    except ImportError:
        return 0  # the refresh job's module is not part of this build
    max_age: timedelta = getattr(projects, "DEFAULT_MAX_AGE", PROJECTS_MAX_AGE)
    # the same rule as connect_app.jira.projects.projects_stale, for every tenant in one query
    oldest = (
        select(JiraProject.tenant_id, func.min(JiraProject.refreshed_at).label("refreshed_at"))
        .group_by(JiraProject.tenant_id)
        .subquery()
    )
    has_integration = (
        select(Integration.id)
        .where(Integration.tenant_id == Tenant.id, Integration.status == IntegrationStatus.ACTIVE.value)
        .exists()
    )
    stale = session.scalars(
        select(Tenant.id)
        .outerjoin(oldest, oldest.c.tenant_id == Tenant.id)
        .where(
            Tenant.enabled.is_(True),
            has_integration,
            or_(oldest.c.refreshed_at.is_(None), oldest.c.refreshed_at < now - max_age),
        )
    ).all()
    enqueued = 0
    retry_seconds = int(PROJECTS_RETRY.total_seconds())
    for tenant_id in stale:
        if not conn.set(f"{PROJECTS_ATTEMPT_PREFIX}{tenant_id}", "1", nx=True, ex=retry_seconds):
            continue
        if queueing.enqueue_unique(
            conn,
            queueing.MAINTENANCE_QUEUE,
            queueing.REFRESH_PROJECTS_FUNC,
            (tenant_id,),
            f"jira-projects-{tenant_id}",
            timeout=queueing.MAINTENANCE_JOB_TIMEOUT,
            description=f"refresh the Jira projects of tenant {tenant_id}",
        ):
            enqueued += 1
    return enqueued
