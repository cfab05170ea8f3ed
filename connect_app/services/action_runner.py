"""Run one create-branch / create-pull-request job (the worker side of
:mod:`connect_app.services.actions`).

The job row moves ``queued -> running`` with a conditional update, so a job runs at most once
whatever RQ does. The host call uses the user's own token when the job says so (re-read now:
it may have been replaced or refused since), else the integration's credentials. A host's
refusal becomes ``failed`` with words a user can act on (name taken, no permission, protected
branch, not found, rate limited with ``retry_at``); a refused *user* token is marked invalid so
the dialog asks for a new one.

On success the new branch or pull request and its link to the issue are stored at once (the
issue's development data shows it before the next index run), the integration log records who
created what, and where the integration sends to Jira's Development panel a sync of the
repository is requested.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connect_app.errors import (
    AppError,
    BadRequest,
    Conflict,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    RateLimited,
    Unsupported,
)
from connect_app.hosts.base import PullRequest, RemoteBranch
from connect_app.hosts.registry import provider_info
from connect_app.integrations import remote_repository
from connect_app.models import (
    ActionJob,
    ActionKind,
    ActionStatus,
    EventLevel,
    EventSource,
    Integration,
    IntegrationStatus,
    Repository,
    RunStatus,
    Trigger,
    utcnow,
)
from connect_app.services import action_credentials
from connect_app.services.action_results import Context, result_of, store_branch, store_pull_request
from connect_app.services.actions import offered
from connect_app.services.integration_log import record_event
from connect_app.services.integration_settings import Feature, feature_enabled

log = logging.getLogger(__name__)

RATE_LIMIT_DEFAULT_WAIT = timedelta(minutes=1)  # when the host did not say when its limit resets
_PROTECTED = ("protected", "gh006", "pre-receive hook declined", "hook declined")


@dataclass
class Failure(Exception):
    """Why a job failed, in the user's words; ``retry_at`` when trying later will work."""

    code: str
    message: str
    retry_at: datetime | None = None


# --------------------------------------------------------------------------- entry point


def run_action(session: Session, action_id: str) -> dict[str, Any]:
    """Run the job ``action_id`` if it is still queued; returns its final status."""
    job = claim(session, action_id)
    if job is None:
        return {"id": action_id, "status": "skipped"}
    try:
        context = load_context(session, job)
        result = perform(session, context)
    except Failure as failure:
        fail(session, job, failure)
        return {"id": job.id, "status": job.status, "error": job.error_code}
    except Exception:
        log.exception("action %s failed unexpectedly", action_id)
        session.rollback()
        fail(session, job, Failure("internal_error", "Something went wrong on our side; it has been logged."))
        return {"id": job.id, "status": job.status, "error": job.error_code}
    request_jira_sync(context)
    return {"id": job.id, "status": job.status, "result": result}


def claim(session: Session, action_id: str) -> ActionJob | None:
    """``queued -> running``, atomically: None when another worker (or a previous try) has it."""
    outcome = session.execute(
        update(ActionJob)
        .where(ActionJob.id == action_id, ActionJob.status == ActionStatus.QUEUED.value)
        .values(status=ActionStatus.RUNNING.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if not getattr(outcome, "rowcount", 0):
        return None
    return session.scalar(select(ActionJob).where(ActionJob.id == action_id).execution_options(populate_existing=True))


def load_context(session: Session, job: ActionJob) -> Context:
    repo = session.scalar(
        select(Repository).where(Repository.id == job.repository_id, Repository.tenant_id == job.tenant_id)
    )
    integration = (
        session.scalar(
            select(Integration).where(Integration.id == repo.integration_id, Integration.tenant_id == job.tenant_id)
        )
        if repo is not None
        else None
    )
    if repo is None or integration is None or repo.removed_at is not None or not repo.enabled:
        raise Failure("repository_not_found", "The repository is no longer available in this app.")
    context = Context(job, repo, integration)
    if integration.status == IntegrationStatus.DISABLED.value or not offered(integration, context.kind):
        raise Failure(
            "feature_disabled",
            f"{'Creating branches' if context.kind is ActionKind.CREATE_BRANCH else 'Creating pull requests'} "
            f"is no longer switched on for {integration.display_name}.",
        )
    return context


def fail(session: Session, job: ActionJob, failure: Failure) -> None:
    job.status = ActionStatus.FAILED.value
    job.error_code, job.error = failure.code, failure.message
    job.retry_at, job.finished_at = failure.retry_at, utcnow()
    if job.repository_id is not None:
        repo = session.get(Repository, job.repository_id)
        if repo is not None and repo.tenant_id == job.tenant_id:
            what = "branch" if job.kind == ActionKind.CREATE_BRANCH.value else "pull request"
            record_event(
                session,
                tenant_id=job.tenant_id,
                integration_id=repo.integration_id,
                repository_id=repo.id,
                level=EventLevel.WARNING,
                source=EventSource.ACTION,
                message=f"Could not create a {what} in {repo.name} for {job.issue_key}: {failure.message}",
                detail={"action_id": job.id, "code": failure.code, "account_id": job.account_id},
            )
    session.commit()


# --------------------------------------------------------------------------- the host call


def perform(session: Session, context: Context) -> dict[str, Any]:
    job, integration = context.job, context.integration
    user = None
    if job.as_user:
        user = action_credentials.user_credentials(session, job.tenant_id, job.account_id, integration.id)
        if user is None:
            raise Failure(
                "user_token_required",
                f"{integration.display_name} needs your own access token; enter it and try again.",
            )
    remote = remote_repository(context.repository)
    request = job.request
    created: RemoteBranch | PullRequest
    try:
        host = action_credentials.action_host(integration, user)
        if context.kind is ActionKind.CREATE_BRANCH:
            created = host.create_branch(remote, request["name"], request["source"])
        else:
            created = host.create_pull_request(
                remote,
                source=request["source"],
                target=request["target"],
                title=request["title"],
                body=request.get("body") or "",
            )
    except AppError as e:
        raise describe(session, context, e) from e
    result = record_created(session, context, created)
    job.status, job.result, job.finished_at = ActionStatus.DONE.value, result, utcnow()
    session.commit()
    return result


def record_created(session: Session, context: Context, created: RemoteBranch | PullRequest) -> dict[str, Any]:
    """Store what the host created. It exists on the host whatever happens here, so a failure
    to store it is logged, not reported as a failed job: the next index run stores it."""
    try:
        if isinstance(created, RemoteBranch):
            result = store_branch(session, context, created)
        else:
            result = store_pull_request(session, context, created)
        session.flush()
        return result
    except Exception:
        log.exception("action %s: created on the host but not stored", context.job.id)
        session.rollback()
        return result_of(context, created)


def describe(session: Session, context: Context, error: AppError) -> Failure:
    """The host's refusal in words for the person who asked."""
    job, repo, integration = context.job, context.repository, context.integration
    host = provider_info(integration.provider).name
    request = job.request
    said = error.message.rstrip(".")
    low = said.lower()
    if isinstance(error, RateLimited):
        when = error.reset_at or utcnow() + RATE_LIMIT_DEFAULT_WAIT
        return Failure(
            "rate_limited",
            f"{host} is rate limiting these credentials; try again after {when:%H:%M} UTC.",
            retry_at=when,
        )
    if isinstance(error, HostAuthError):
        if job.as_user:
            reason = f"{host} refused the token: {said}"
            action_credentials.mark_token_invalid(session, job.tenant_id, job.account_id, integration.id, reason)
            return Failure(
                "user_token_invalid",
                f"{host} refused your token for {integration.display_name} (expired, revoked or wrong). "
                "Enter a new token and try again.",
            )
        return Failure(
            "credentials_refused",
            f"{host} refused the credentials of {integration.display_name}; "
            "a Jira administrator must update them in the integration's settings.",
        )
    if any(word in low for word in _PROTECTED):
        return Failure("protected_branch", f"{host} refused: the branch is protected ({said}).")
    if context.kind is ActionKind.CREATE_BRANCH and (
        error.code == "branch_exists" or isinstance(error, Conflict) or "already exists" in low
    ):
        return Failure(
            "branch_exists", f"A branch named {request['name']!r} already exists in {repo.name}; pick another name."
        )
    if context.kind is ActionKind.CREATE_PULL_REQUEST and (
        error.code == "pull_request_exists" or "already exists" in low
    ):
        return Failure(
            "pull_request_exists",
            f"A pull request from {request['source']!r} to {request['target']!r} already exists in {repo.name}.",
        )
    if isinstance(error, HostPermissionDenied):
        what = "create branches" if context.kind is ActionKind.CREATE_BRANCH else "create pull requests"
        return Failure("no_permission", f"{context.who} may not {what} in {repo.name} ({said}).")
    if isinstance(error, HostNotFound):
        branches = repr(request["source"])
        if context.kind is ActionKind.CREATE_PULL_REQUEST:
            branches += f" or {request['target']!r}"
        return Failure(
            "not_found",
            f"{host} did not find {repo.name} or the branch {branches}, or {context.who.lower()} cannot see them "
            f"({said}).",
        )
    if isinstance(error, HostUnavailable):
        return Failure("host_unavailable", f"{host} could not be reached; try again in a few minutes ({said}).")
    if isinstance(error, Unsupported):
        return Failure("action_unsupported", f"{said}.")
    if isinstance(error, HostError | BadRequest):
        return Failure("rejected", f"{host} refused the request: {said}.")
    return Failure(error.code, f"{said}.")


def request_jira_sync(context: Context) -> bool:
    """Ask for a Development panel push of the repository (a no-op unless the feature is on)."""
    if not feature_enabled(context.integration, Feature.DEVELOPMENT_PANEL):
        return False
    from connect_app.jira.followups import after_index  # the Jira side is only needed here

    result = {"status": RunStatus.DONE.value, "repository_id": context.repository.id, "links_created": 1}
    return after_index(result, Trigger.MANUAL.value)
