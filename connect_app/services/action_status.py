"""The status of a create-branch / create-pull-request job as its requester sees it
(``GET /api/jobs/{id}``): only the tenant and account that asked may read it, and a job that
stopped reporting is turned into a clear failure instead of "running" for ever."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import NotFound
from connect_app.models import ActionJob, ActionStatus, utcnow
from connect_app.services.actions import JOB_TIMEOUT_SECONDS
from connect_app.services.development import iso

# A job queued or running this long after its last update will never report: the worker died,
# or Redis lost the queue.
STALE_AFTER = timedelta(seconds=JOB_TIMEOUT_SECONDS * 2 + 60)


def find_job(session: Session, tenant_id: int, account_id: str | None, job_id: str) -> ActionJob:
    """The caller's own job; any other (another user's, another tenant's, none) is the same 404."""
    job = None
    if account_id and 0 < len(job_id) <= 32 and job_id.replace("-", "").replace("_", "").isalnum():
        job = session.scalar(
            select(ActionJob).where(
                ActionJob.id == job_id, ActionJob.tenant_id == tenant_id, ActionJob.account_id == account_id
            )
        )
    if job is None:
        raise NotFound("No such job (it may have expired, or belong to someone else).", code="job_not_found")
    return job


LOST = "The job stopped without reporting a result. Check the repository before trying again."


def expire_if_lost(session: Session, job: ActionJob) -> None:
    """A queued or running job not updated for :data:`STALE_AFTER` is failed (see there)."""
    if job.status not in (ActionStatus.QUEUED.value, ActionStatus.RUNNING.value):
        return
    if utcnow() - job.updated_at < STALE_AFTER:
        return
    job.status, job.error_code, job.error, job.finished_at = ActionStatus.FAILED.value, "job_lost", LOST, utcnow()
    session.commit()


def job_payload(job: ActionJob) -> dict[str, Any]:
    """The body of ``GET /api/jobs/{id}``."""
    body: dict[str, Any] = {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "issue_key": job.issue_key,
        "repository_id": job.repository_id,
        "created_at": iso(job.created_at),
        "finished_at": iso(job.finished_at),
    }
    if job.status == ActionStatus.DONE.value and job.result is not None:
        body["result"] = job.result
    if job.status == ActionStatus.FAILED.value:
        error: dict[str, Any] = {"code": job.error_code or "failed", "message": job.error or "The job failed."}
        if job.retry_at is not None:
            error["retry_at"] = iso(job.retry_at)
        body["error"] = error
    return body
