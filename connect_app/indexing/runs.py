"""The life of an :class:`~connect_app.models.IndexRun`: queued, running, then done,
failed or rate-limited. Every change commits on its own, so the queue viewer sees it
at once and a killed worker leaves a row that says where it stopped."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from connect_app.errors import AppError, RateLimited
from connect_app.models import IndexRun, RunKind, RunStatus, Trigger, utcnow

ERROR_TEXT_LIMIT = 2000
# A dropped database connection (failover, restart): what the run had committed is kept with
# its cursor, and the job's retry (RQ Retry) or the next scheduled run carries on from there.
DATABASE_LOST = "the connection to the database was lost; the next attempt resumes where this one stopped"
FINISHED = (RunStatus.DONE.value, RunStatus.FAILED.value, RunStatus.RATE_LIMITED.value)


def queue_run(
    session: Session,
    *,
    tenant_id: int,
    integration_id: int,
    repository_id: int | None,
    trigger: Trigger,
    kind: RunKind = RunKind.INDEX,
    job_id: str | None = None,
) -> IndexRun:
    run = IndexRun(
        tenant_id=tenant_id,
        integration_id=integration_id,
        repository_id=repository_id,
        kind=kind.value,
        trigger=Trigger(trigger).value,
        status=RunStatus.QUEUED.value,
        job_id=job_id,
        queued_at=utcnow(),
    )
    session.add(run)
    session.flush()
    return run


def start_run(session: Session, run: IndexRun) -> None:
    run.status = RunStatus.RUNNING.value
    run.started_at = utcnow()
    run.finished_at = None
    run.attempts += 1
    session.commit()


def finish_run(session: Session, run: IndexRun) -> None:
    run.status = RunStatus.DONE.value
    run.finished_at = utcnow()
    run.error = None
    session.commit()


def fail_run(session: Session, run: IndexRun, error: BaseException) -> None:
    """Record a failure in words a user can act on; never a traceback, never a secret."""
    session.rollback()
    if isinstance(error, RateLimited):
        run.status = RunStatus.RATE_LIMITED.value
        run.rate_limited_until = error.reset_at
    else:
        run.status = RunStatus.FAILED.value
    run.finished_at = utcnow()
    run.error = error_text(error)
    session.commit()


def error_text(error: BaseException) -> str:
    if isinstance(error, AppError):
        text = error.message
    elif isinstance(error, DBAPIError) and error.connection_invalidated:
        text = DATABASE_LOST
    else:
        text = f"internal error ({type(error).__name__}); the details are in the worker log"
    return text[:ERROR_TEXT_LIMIT]


def active_run(session: Session, repository_id: int) -> IndexRun | None:
    """The queued or running index run of a repository, if any."""
    return session.scalars(
        select(IndexRun)
        .where(
            IndexRun.repository_id == repository_id,
            IndexRun.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
        )
        .order_by(IndexRun.id.desc())
        .limit(1)
    ).first()


def prune_runs(session: Session, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete finished runs older than ``older_than``; returns how many."""
    cutoff = (now or utcnow()) - older_than
    result = session.execute(delete(IndexRun).where(IndexRun.status.in_(FINISHED), IndexRun.finished_at < cutoff))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
