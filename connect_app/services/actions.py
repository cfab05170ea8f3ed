"""Create a branch or a pull request from a Jira issue: the request side (no Flask).

Everything is checked before anything is stored, in this order, each failure a clear error and
nothing created: the issue key; the request's fields (branch names by git's rules); the
repository (visible to this user in this tenant *and* associated with the issue's project;
another tenant's id, a hidden or unknown one are the same 404); what the host can do and what
the integration's features allow; whose credentials (with "require user PAT" on, the user's
own token: none saved is a 409 ``user_token_required`` naming the integration, so the dialog
can ask for it); and last the issue itself, asked of Jira.

Then an :class:`~connect_app.models.ActionJob` row is committed and an RQ job ``action-<id>``
enqueued on the interactive queue (no retries: creating twice is worse than failing once;
:mod:`connect_app.services.action_runner` does the work). When Redis is down the row is marked
failed at once and the caller gets a 503: no row is left "queued" for ever. The repository is
remembered as the user's last choice for the project (``create_branch.repository.<PROJECT>``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connect_app.errors import (
    AppError,
    Conflict,
    HostNotFound,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unsupported,
)
from connect_app.hosts.registry import provider_info
from connect_app.indexing.issue_keys import is_issue_key, project_of
from connect_app.jira.client import JiraClient
from connect_app.jira.tenants import shared_secret
from connect_app.log_context import job_meta
from connect_app.models import (
    ActionJob,
    ActionKind,
    ActionStatus,
    Integration,
    IntegrationStatus,
    Repository,
    Tenant,
    UserPreference,
    utcnow,
)
from connect_app.runtime import runtime
from connect_app.services import action_credentials, development
from connect_app.services.action_input import (
    BranchRequest,
    PullRequestRequest,
    parse_branch_request,
    parse_issue_key,
    parse_pull_request_request,
)
from connect_app.services.development import iso
from connect_app.services.integration_settings import FEATURE_NEEDS, Feature, feature_enabled, supports

log = logging.getLogger(__name__)

INTERACTIVE_QUEUE = "interactive"  # workers.queues.QueueName.INTERACTIVE (the web never imports workers)
RUN_FUNC = "workers.jobs.run_action"
JOB_TIMEOUT_SECONDS = 5 * 60  # one host call (plain git: a shallow clone and a push)
JOB_RESULT_TTL = 10 * 60  # the ActionJob row is the record; RQ's copy is for debugging
JOB_FAILURE_TTL = 24 * 3600
PREFERENCE_PREFIX = "create_branch.repository."
JIRA_TIMEOUT = (5.0, 10.0)

FEATURE_OF: dict[ActionKind, Feature] = {
    ActionKind.CREATE_BRANCH: Feature.CREATE_BRANCH,
    ActionKind.CREATE_PULL_REQUEST: Feature.CREATE_PULL_REQUEST,
}
WHAT: dict[ActionKind, str] = {
    ActionKind.CREATE_BRANCH: "create branches",
    ActionKind.CREATE_PULL_REQUEST: "create pull requests",
}


class ActionError(AppError):
    """An :class:`AppError` with more for the dialog than code and message (``extra`` is merged
    into the ``error`` object): which integration needs a token, when to retry."""

    def __init__(self, message: str, *, code: str, status: int, extra: Mapping[str, Any]) -> None:
        super().__init__(message, code=code, status=status)
        self.extra = dict(extra)

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def user_token_required(integration: Integration) -> ActionError:
    return ActionError(
        f"{integration.display_name} needs your own access token to create branches and pull requests "
        "for you. Enter your token, then try again.",
        code="user_token_required",
        status=409,
        extra={
            "integration": {
                "id": integration.id,
                "display_name": integration.display_name,
                "provider": integration.provider,
            }
        },
    )


# --------------------------------------------------------------------------- the issue


@dataclass(frozen=True)
class Issue:
    key: str
    summary: str
    issue_type: str
    project_key: str


IssueLookup = Callable[[Tenant, str], Issue]


def jira_client(tenant: Tenant) -> JiraClient:
    rt = runtime()
    return JiraClient(
        base_url=tenant.base_url,
        app_key=rt.settings.app_key,
        shared_secret=shared_secret(tenant, rt.secrets),
        timeout=JIRA_TIMEOUT,
        max_retry_wait=3.0,  # a person is waiting: a longer Retry-After is a clear "rate limited"
        max_retries=1,
    )


def fetch_issue(tenant: Tenant, issue_key: str) -> Issue:
    """The issue as Jira has it (summary, type, project); a 404 when it does not exist."""
    try:
        data = jira_client(tenant).get_json(
            f"/rest/api/3/issue/{issue_key}", params={"fields": "summary,issuetype,project"}
        )
    except HostNotFound as e:
        raise NotFound(
            f"Issue {issue_key} does not exist in Jira (or the app may not see it).", code="issue_not_found"
        ) from e
    except RateLimited as e:
        when = e.reset_at or utcnow()
        raise ActionError(
            f"Jira is rate limiting the app; try again after {when:%H:%M:%S} UTC.",
            code="rate_limited",
            status=429,
            extra={"retry_at": iso(when)},
        ) from e
    fields = data.get("fields") if isinstance(data, dict) else None
    fields = fields if isinstance(fields, dict) else {}
    key = data.get("key") if isinstance(data, dict) else None
    key = key if isinstance(key, str) and is_issue_key(key) else issue_key  # a moved issue has a new key
    issue_type, project = fields.get("issuetype"), fields.get("project")
    project_key = project.get("key") if isinstance(project, dict) else None
    return Issue(
        key=key,
        summary=str(fields.get("summary") or ""),
        issue_type=str(issue_type.get("name") or "") if isinstance(issue_type, dict) else "",
        project_key=project_key if isinstance(project_key, str) and project_key else project_of(key),
    )


# --------------------------------------------------------------------------- repository and integration


@dataclass(frozen=True)
class Target:
    repository: Repository
    integration: Integration


def repository_not_found(repository_id: int, project_key: str) -> NotFound:
    return NotFound(
        f"Repository {repository_id} is not available to you for project {project_key} "
        "(it does not exist, is not linked to this project, or you may not see it).",
        code="repository_not_found",
    )


def visible_target(session: Session, tenant_id: int, account_id: str, repository_id: int, project_key: str) -> Target:
    """The repository and its integration, if this user may use it for the project; else a 404
    that says the same whatever the reason (another tenant's id reveals nothing)."""
    visible = development.visible_repository_ids(
        session, tenant_id, account_id, [repository_id], project_key=project_key
    )
    repo = (
        session.scalar(select(Repository).where(Repository.id == repository_id, Repository.tenant_id == tenant_id))
        if repository_id in visible
        else None
    )
    integration = (
        session.scalar(
            select(Integration).where(Integration.id == repo.integration_id, Integration.tenant_id == tenant_id)
        )
        if repo is not None
        else None
    )
    if repo is None or integration is None:
        raise repository_not_found(repository_id, project_key)
    return Target(repo, integration)


def offered(integration: Integration, kind: ActionKind) -> bool:
    """The host can do it and the admin has not switched it off."""
    return feature_enabled(integration, FEATURE_OF[kind])


def require_offered(integration: Integration, kind: ActionKind) -> None:
    feature = FEATURE_OF[kind]
    info = provider_info(integration.provider)
    if not supports(info, feature):
        raise Unsupported(
            f"{info.name} repositories cannot {WHAT[kind]} through this app "
            f"(the host has no {FEATURE_NEEDS[feature].value.replace('_', ' ')} support).",
            code="action_unsupported",
        )
    if not feature_enabled(integration, feature):
        raise PermissionDenied(
            f"Creating {'branches' if kind is ActionKind.CREATE_BRANCH else 'pull requests'} is switched off "
            f"for {integration.display_name}; a Jira administrator can switch it on in the integration's settings.",
            code="feature_disabled",
        )


def require_credentials(session: Session, target: Target, account_id: str) -> bool:
    """True when the user's own token will be used; raise when no usable credentials exist."""
    integration = target.integration
    if action_credentials.needs_user_token(integration):
        found = action_credentials.user_credentials(session, integration.tenant_id, account_id, integration.id)
        if found is None:
            raise user_token_required(integration)
        return True
    if integration.status == IntegrationStatus.AUTH_FAILED.value:
        raise Conflict(
            f"The host refuses the credentials of {integration.display_name}; a Jira administrator must "
            "replace them in the integration's settings first.",
            code="credentials_refused",
        )
    return False


# --------------------------------------------------------------------------- submitting


def require_account(account_id: str | None) -> str:
    if not account_id:
        raise PermissionDenied("Sign in to Jira to create branches and pull requests.", code="no_user")
    return account_id


def preference_name(project_key: str) -> str:
    return f"{PREFERENCE_PREFIX}{project_key}"


def remember_repository(session: Session, tenant_id: int, account_id: str, project_key: str, repo_id: int) -> None:
    """Remember (and commit) the user's last repository for the project; a race with another
    tab is harmless: one wins."""
    name = preference_name(project_key)
    where = (
        UserPreference.tenant_id == tenant_id,
        UserPreference.account_id == account_id,
        UserPreference.name == name,
    )
    found = session.scalar(select(UserPreference).where(*where))
    if found is None:
        session.add(UserPreference(tenant_id=tenant_id, account_id=account_id, name=name, value=repo_id))
    else:
        found.value = repo_id
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        log.info("last repository of %s in %s not remembered (written concurrently)", account_id, project_key)


def last_repository(session: Session, tenant_id: int, account_id: str, project_key: str) -> int | None:
    value = session.scalar(
        select(UserPreference.value).where(
            UserPreference.tenant_id == tenant_id,
            UserPreference.account_id == account_id,
            UserPreference.name == preference_name(project_key),
        )
    )
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def new_job_id() -> str:
    return secrets.token_urlsafe(16)  # 22 characters of [A-Za-z0-9_-]: a valid RQ job id too


def rq_job_id(action_id: str) -> str:
    return f"action-{action_id}"


def enqueue(conn: Redis, action_id: str) -> None:
    """Raises RedisError when Redis is down."""
    Queue(INTERACTIVE_QUEUE, connection=conn).enqueue_call(
        RUN_FUNC,
        args=(action_id,),
        job_id=rq_job_id(action_id),
        unique=True,
        timeout=JOB_TIMEOUT_SECONDS,
        result_ttl=JOB_RESULT_TTL,
        failure_ttl=JOB_FAILURE_TTL,
        description=f"action {action_id}",
        meta=job_meta(),
    )


QUEUE_DOWN = "The job queue cannot be reached right now, so nothing was created. Try again in a minute."


def submit(
    session: Session,
    conn: Redis,
    *,
    tenant_id: int,
    account_id: str,
    issue: Issue,
    target: Target,
    kind: ActionKind,
    request: Mapping[str, Any],
    as_user: bool,
) -> ActionJob:
    """Commit the job row, enqueue it, then remember the repository as the user's choice."""
    job = ActionJob(
        id=new_job_id(),
        tenant_id=tenant_id,
        account_id=account_id,
        kind=kind.value,
        issue_key=issue.key,
        repository_id=target.repository.id,
        request=dict(request),
        as_user=as_user,
        status=ActionStatus.QUEUED.value,
    )
    session.add(job)
    session.commit()
    try:
        enqueue(conn, job.id)
    except RedisError as e:
        log.warning("action %s not queued: Redis unreachable", job.id)
        job.status = ActionStatus.FAILED.value
        job.error_code, job.error, job.finished_at = "queue_unavailable", QUEUE_DOWN, utcnow()
        session.commit()
        raise AppError(QUEUE_DOWN, code="queue_unavailable", status=503) from e
    remember_repository(session, tenant_id, account_id, issue.project_key, target.repository.id)
    return job


def request_action(
    session: Session,
    conn: Redis,
    *,
    tenant: Tenant,
    account_id: str | None,
    issue_key: str,
    kind: ActionKind,
    data: Any,
    lookup: IssueLookup = fetch_issue,
) -> ActionJob:
    """Validate a create-branch / create-pull-request request and queue it (see the module docstring)."""
    key = parse_issue_key(issue_key)
    account = require_account(account_id)
    parsed: BranchRequest | PullRequestRequest = (
        parse_branch_request(data) if kind is ActionKind.CREATE_BRANCH else parse_pull_request_request(data)
    )
    target = visible_target(session, tenant.id, account, parsed.repository_id, project_of(key))
    require_offered(target.integration, kind)
    as_user = require_credentials(session, target, account)
    issue = lookup(tenant, key)
    if issue.project_key != project_of(key):  # moved to another project since: check that one too
        target = visible_target(session, tenant.id, account, parsed.repository_id, issue.project_key)
    return submit(
        session,
        conn,
        tenant_id=tenant.id,
        account_id=account,
        issue=issue,
        target=target,
        kind=kind,
        request=parsed.stored(),
        as_user=as_user,
    )
