"""The indexing queue as admins see it: runs newest first, and "Clear queued runs".

A cleared run is marked ``failed`` with :data:`CANCELLED_MESSAGE` (``RunStatus`` has no
"cancelled" value) and its RQ job is deleted when it has not started. Everything is
tenant-scoped by the caller's tenant id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError
from rq.job import Job
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connect_app.errors import Conflict
from connect_app.indexing import queueing
from connect_app.models import (
    IndexRun,
    Integration,
    Repository,
    RepositoryStatus,
    RunKind,
    RunStatus,
    utcnow,
)

log = logging.getLogger(__name__)

CANCELLED_MESSAGE = "Cancelled by an administrator (Clear queued runs) before it started."
LOCK_WAIT_SECONDS = 5.0
_WAITING_JOB_STATUSES = frozenset({"queued", "scheduled", "deferred"})


@dataclass(frozen=True)
class RunRow:
    run: IndexRun
    integration_name: str | None
    repository_name: str | None


def list_runs(
    session: Session,
    tenant_id: int,
    *,
    statuses: Sequence[str] = (),
    triggers: Sequence[str] = (),
    kinds: Sequence[str] = (),
    integration_id: int | None = None,
    repository_id: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[RunRow]:
    """Newest first (by id: ids grow with ``queued_at``); ``before`` is the last id of the previous page."""
    query = (
        select(IndexRun, Integration.display_name, Repository.name)
        .join(Integration, Integration.id == IndexRun.integration_id)
        .outerjoin(Repository, Repository.id == IndexRun.repository_id)
        .where(IndexRun.tenant_id == tenant_id)
    )
    if statuses:
        query = query.where(IndexRun.status.in_(statuses))
    if triggers:
        query = query.where(IndexRun.trigger.in_(triggers))
    if kinds:
        query = query.where(IndexRun.kind.in_(kinds))
    if integration_id is not None:
        query = query.where(IndexRun.integration_id == integration_id)
    if repository_id is not None:
        query = query.where(IndexRun.repository_id == repository_id)
    if before is not None:
        query = query.where(IndexRun.id < before)
    rows = session.execute(query.order_by(IndexRun.id.desc()).limit(limit)).all()
    return [RunRow(run, integration_name, repository_name) for run, integration_name, repository_name in rows]


def cancel_jobs(conn: Redis, job_ids: Sequence[str]) -> int:
    """Delete the RQ jobs that are still waiting (queued, scheduled for a retry, deferred);
    started ones are left to finish. Best effort: returns how many were deleted, 0 when
    Redis is unreachable."""
    cancelled = 0
    try:
        statuses = queueing.job_statuses(conn, list(job_ids))
        for job_id, status in statuses.items():
            if status in _WAITING_JOB_STATUSES:
                Job.fetch(job_id, connection=conn).delete()
                cancelled += 1
    except RedisError:
        log.warning("Redis unreachable: %d queued job(s) not cancelled", len(job_ids))
    except Exception:  # an unreadable job must not fail the admin's request
        log.exception("cancelling queued jobs failed")
    return cancelled


@dataclass(frozen=True)
class Cleared:
    runs_cancelled: int
    jobs_cancelled: int
    already_started: int


def clear_queued(
    session: Session,
    conn: Redis,
    tenant_id: int,
    *,
    integration_id: int | None = None,
    repository_id: int | None = None,
) -> Cleared:
    """Cancel the tenant's queued runs (and their waiting jobs) under the scheduler lock, so
    the dispatcher does not enqueue the same repositories while we clear them. A run whose
    job a worker has just taken is left alone (it will show as running in a moment)."""
    with ExitStack() as stack:
        try:
            held = stack.enter_context(queueing.scheduler_lock(conn, wait=LOCK_WAIT_SECONDS))
        except RedisError:
            held = True  # Redis down: no job can start either, and the rows can still be cleared
        if not held:
            raise Conflict("The scheduler is busy right now; try again in a few seconds.", code="scheduler_busy")
        return _clear(session, conn, tenant_id, integration_id, repository_id)


def _clear(
    session: Session, conn: Redis, tenant_id: int, integration_id: int | None, repository_id: int | None
) -> Cleared:
    query = select(IndexRun).where(IndexRun.tenant_id == tenant_id, IndexRun.status == RunStatus.QUEUED.value)
    if integration_id is not None:
        query = query.where(IndexRun.integration_id == integration_id)
    if repository_id is not None:
        query = query.where(IndexRun.repository_id == repository_id)
    queued = list(session.scalars(query))
    job_ids = sorted({r.job_id for r in queued if r.job_id})
    try:
        statuses = queueing.job_statuses(conn, job_ids)
    except RedisError:
        statuses = {}
    started = {job_id for job_id, status in statuses.items() if status == "started"}
    jobs_cancelled = cancel_jobs(conn, [j for j in job_ids if j not in started])
    now = utcnow()
    cancelled = 0
    repository_ids: list[int] = []
    for run in queued:
        if run.job_id in started:
            continue
        # Conditional: a worker that marked the run running a moment ago wins.
        result = session.execute(
            update(IndexRun)
            .where(IndexRun.id == run.id, IndexRun.status == RunStatus.QUEUED.value)
            .values(status=RunStatus.FAILED.value, finished_at=now, error=CANCELLED_MESSAGE)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0):
            cancelled += 1
            if run.kind == RunKind.INDEX.value and run.repository_id is not None:
                repository_ids.append(run.repository_id)
    _release_repositories(session, repository_ids)
    session.commit()
    for repository_id in repository_ids:
        try:
            queueing.forget_request(conn, repository_id)
        except RedisError:
            break
    log.info("cleared %d queued run(s) of tenant %s (%d jobs deleted)", cancelled, tenant_id, jobs_cancelled)
    return Cleared(cancelled, jobs_cancelled, len([r for r in queued if r.job_id in started]))


def _release_repositories(session: Session, repository_ids: list[int]) -> None:
    """Queued repositories go back to idle (ok, or new when never indexed), keeping their
    schedule: they are indexed at their next due time, not straight away."""
    if not repository_ids:
        return
    for repo in session.scalars(
        select(Repository).where(Repository.id.in_(repository_ids), Repository.status == RepositoryStatus.QUEUED.value)
    ):
        repo.status = (RepositoryStatus.OK if repo.last_indexed_at else RepositoryStatus.NEW).value
        repo.reindex_requested_at = None
