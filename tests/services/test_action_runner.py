"""The worker side of create branch / pull request: what a host's refusal becomes (words and
codes a user can act on), what is stored on success (rows, the link to the issue, the log), the
user's own token (used, and marked invalid when refused), and that a job runs at most once.

The host here is a stand-in returning or raising what the real clients do (their own contract
tests cover the HTTP side); real runs against Prism and a loopback git server are in
tests/web/test_api_actions.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from connect_app.errors import (
    Conflict,
    HostAuthError,
    HostError,
    HostNotFound,
    HostPermissionDenied,
    HostUnavailable,
    RateLimited,
    Unsupported,
)
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import Credentials, PullRequest, PullRequestState, RemoteBranch, RemoteRepository
from connect_app.models import (
    ActionJob,
    ActionKind,
    ActionStatus,
    Branch,
    EventSource,
    IntegrationEvent,
    IssueLink,
    PullRequestRecord,
    Repository,
    UserToken,
    utcnow,
)
from connect_app.services import action_credentials, action_runner, action_status, actions
from connect_app.services.integration_settings import merged_features
from tests.support.connect import Jira, JiraSite
from tests.support.jira_stub import JiraStub
from tests.web.action_support import ACCOUNT, ActionEnv, action_env

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeHost:
    """Answers like a GitHost, or raises ``error``; remembers who called with what."""

    error: Exception | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    credentials: list[Credentials | None] = field(default_factory=list)

    def create_branch(self, repo: RemoteRepository, name: str, from_ref: str) -> RemoteBranch:
        self.calls.append(("branch", (repo.name, name, from_ref)))
        if self.error:
            raise self.error
        return RemoteBranch(name=name, head_sha="a" * 40, url=f"https://git.example/{repo.name}/tree/{name}")

    def create_pull_request(
        self, repo: RemoteRepository, *, source: str, target: str, title: str, body: str
    ) -> PullRequest:
        self.calls.append(("pull_request", (repo.name, source, target, title, body)))
        if self.error:
            raise self.error
        return PullRequest(
            external_id="42",
            title=title,
            state=PullRequestState.OPEN,
            source_branch=source,
            target_branch=target,
            url=f"https://git.example/{repo.name}/pull/42",
            updated_at=T0,
            description=body,
            author="ann",
            created_at=T0,
        )


@pytest.fixture
def env(app: Flask, jira: Jira, installed_site: JiraSite, jira_stub: JiraStub) -> Iterator[ActionEnv]:
    with app.app_context():
        yield action_env(app, jira, installed_site, jira_stub)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    fake = FakeHost()

    def build(integration: Any, user: Credentials | None) -> FakeHost:
        fake.credentials.append(user)
        return fake

    monkeypatch.setattr(action_credentials, "action_host", build)
    return fake


def queue_job(
    env: ActionEnv,
    repo: Repository,
    kind: ActionKind = ActionKind.CREATE_BRANCH,
    *,
    as_user: bool = False,
    **request: Any,
) -> str:
    if kind is ActionKind.CREATE_BRANCH:
        request = {"source": "main", "name": "ABC-1-login", **request}
    else:
        request = {"source": "ABC-1-login", "target": "main", "title": "ABC-1 Login", "body": "", **request}
    job = ActionJob(
        id=actions.new_job_id(),
        tenant_id=env.tenant_id,
        account_id=ACCOUNT,
        kind=kind.value,
        issue_key="ABC-1",
        repository_id=repo.id,
        request=request,
        as_user=as_user,
    )
    env.session.add(job)
    env.session.commit()
    return job.id


def run(env: ActionEnv, job_id: str) -> ActionJob:
    action_runner.run_action(db.session(), job_id)
    db.session.remove()
    job = env.session.get(ActionJob, job_id)
    assert job is not None
    return job


def links(env: ActionEnv) -> set[tuple[str, str, str]]:
    rows = env.session.execute(select(IssueLink.kind, IssueLink.ref, IssueLink.issue_key))
    return {(k, r, i) for k, r, i in rows}


def events(env: ActionEnv) -> list[tuple[str, str]]:
    rows = env.session.execute(
        select(IntegrationEvent.level, IntegrationEvent.message)
        .where(IntegrationEvent.source == EventSource.ACTION.value)
        .order_by(IntegrationEvent.id)
    )
    return [(level, message) for level, message in rows]


# --------------------------------------------------------------------------- success


def test_a_branch_is_stored_and_linked_at_once(env: ActionEnv, host: FakeHost) -> None:
    repo = env.repository(env.integration())
    job = run(env, queue_job(env, repo))
    assert job.status == ActionStatus.DONE.value and job.finished_at is not None
    assert job.result == {
        "name": "ABC-1-login",
        "url": "https://git.example/acme/widgets/tree/ABC-1-login",
        "head_sha": "a" * 40,
        "source": "main",
        "repository": {"id": repo.id, "name": "acme/widgets"},
    }
    assert host.calls == [("branch", ("acme/widgets", "ABC-1-login", "main"))]
    assert host.credentials == [None]  # the integration's own credentials
    stored = env.session.scalars(select(Branch)).one()
    assert (stored.name, stored.head_sha, stored.tenant_id) == ("ABC-1-login", "a" * 40, env.tenant_id)
    assert links(env) == {("branch", "ABC-1-login", "ABC-1")}
    assert events(env) == [("info", "Branch ABC-1-login created in acme/widgets from main for ABC-1.")]


def test_a_name_without_the_key_is_still_linked_to_the_issue(env: ActionEnv, host: FakeHost) -> None:
    repo = env.repository(env.integration())
    run(env, queue_job(env, repo, name="my-feature/XYZ-9"))
    assert links(env) == {("branch", "my-feature/XYZ-9", "ABC-1"), ("branch", "my-feature/XYZ-9", "XYZ-9")}


def test_a_pull_request_is_stored_and_linked(env: ActionEnv, host: FakeHost) -> None:
    repo = env.repository(env.integration())
    job = run(
        env,
        queue_job(env, repo, ActionKind.CREATE_PULL_REQUEST, source="feature/login", title="Make login work", body="x"),
    )
    assert job.status == "done" and job.result is not None
    assert (job.result["id"], job.result["name"], job.result["url"]) == (
        "42",
        "Make login work",
        "https://git.example/acme/widgets/pull/42",
    )
    pr = env.session.scalars(select(PullRequestRecord)).one()
    assert (pr.external_id, pr.state, pr.source_branch, pr.target_branch) == ("42", "OPEN", "feature/login", "main")
    # Neither the title nor the branch names the issue: it is linked all the same.
    assert links(env) == {("pull_request", "42", "ABC-1")}
    assert "Pull request 42" in events(env)[0][1]


def test_a_job_runs_at_most_once(env: ActionEnv, host: FakeHost) -> None:
    repo = env.repository(env.integration())
    job_id = queue_job(env, repo)
    run(env, job_id)
    assert action_runner.run_action(db.session(), job_id) == {"id": job_id, "status": "skipped"}
    assert action_runner.run_action(db.session(), "no-such-job")["status"] == "skipped"
    assert len(host.calls) == 1


def test_a_jira_sync_is_requested_only_with_the_development_panel_on(env: ActionEnv, host: FakeHost) -> None:
    from rq import Queue

    on = env.repository(env.integration("on"))
    off = env.repository(env.integration("off", features={"development_panel": False}))
    run(env, queue_job(env, on))
    run(env, queue_job(env, off))
    queued = Queue("maintenance", connection=redis_conn.client).job_ids
    assert f"jira-sync-{on.id}" in queued and f"jira-sync-{off.id}" not in queued


# --------------------------------------------------------------------------- refusals in words


RESET = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "kind", "code", "words"),
    [
        (
            HostError("A branch named 'ABC-1-login' already exists", code="branch_exists", status=409),
            ActionKind.CREATE_BRANCH,
            "branch_exists",
            "already exists in acme/widgets; pick another name",
        ),
        (Conflict("the branch 'ABC-1-login' already exists"), ActionKind.CREATE_BRANCH, "branch_exists", "pick"),
        (
            HostError("GitLab answered 400 to POST /branches: Branch already exists", code="host_error"),
            ActionKind.CREATE_BRANCH,
            "branch_exists",
            "ABC-1-login",
        ),
        (
            HostError("A pull request from a to b already exists", code="pull_request_exists", status=409),
            ActionKind.CREATE_PULL_REQUEST,
            "pull_request_exists",
            "from 'ABC-1-login' to 'main' already exists",
        ),
        (
            HostPermissionDenied("GitHub denied POST /repos/acme/widgets/git/refs (403)."),
            ActionKind.CREATE_BRANCH,
            "no_permission",
            "The credentials of acme may not create branches in acme/widgets",
        ),
        (
            HostError("git push failed (remote: error: GH006: Protected branch update failed for refs/heads/x)"),
            ActionKind.CREATE_BRANCH,
            "protected_branch",
            "the branch is protected",
        ),
        (
            HostNotFound("GitHub has no such resource: GET /repos/acme/widgets/git/ref/heads%2Fmain (404)"),
            ActionKind.CREATE_BRANCH,
            "not_found",
            "did not find acme/widgets or the branch 'main'",
        ),
        (HostUnavailable("GitHub failed with 502"), ActionKind.CREATE_BRANCH, "host_unavailable", "try again"),
        (
            HostError("GitHub rejected POST /pulls (422): No commits between main and x", code="host_rejected"),
            ActionKind.CREATE_PULL_REQUEST,
            "rejected",
            "No commits between main and x",
        ),
        (
            HostAuthError("GitHub refused the credentials (401)"),
            ActionKind.CREATE_BRANCH,
            "credentials_refused",
            "a Jira administrator must update them",
        ),
        (Unsupported("nope"), ActionKind.CREATE_BRANCH, "action_unsupported", "nope"),
        (RuntimeError("boom: secret-ish detail"), ActionKind.CREATE_BRANCH, "internal_error", "on our side"),
    ],
)
def test_host_refusals_in_words(
    env: ActionEnv, host: FakeHost, error: Exception, kind: ActionKind, code: str, words: str
) -> None:
    repo = env.repository(env.integration())
    host.error = error
    job = run(env, queue_job(env, repo, kind))
    assert job.status == ActionStatus.FAILED.value and job.result is None
    assert job.error_code == code and words in (job.error or ""), job.error
    assert "boom" not in (job.error or "")
    assert env.count(Branch) == env.count(PullRequestRecord) == 0 and links(env) == set()
    (level, message) = events(env)[0]
    assert level == "warning" and (job.error or "") in message
    payload = action_status.job_payload(job)
    assert payload["error"]["code"] == code and "retry_at" not in payload["error"]


def test_rate_limited_says_when_to_retry(env: ActionEnv, host: FakeHost) -> None:
    repo = env.repository(env.integration())
    host.error = RateLimited("rate limit exhausted", reset_at=RESET)
    job = run(env, queue_job(env, repo))
    assert job.error_code == "rate_limited" and job.retry_at == RESET
    assert "after 03:04 UTC" in (job.error or "")
    assert action_status.job_payload(job)["error"]["retry_at"] == "2030-01-02T03:04:00Z"

    host.error = RateLimited("rate limit exhausted")  # no reset time given: try again in a minute
    job = run(env, queue_job(env, repo))
    assert job.retry_at is not None and job.retry_at > utcnow()


# --------------------------------------------------------------------------- the user's own token


def test_the_users_own_token_is_used(env: ActionEnv, host: FakeHost) -> None:
    integration = env.integration(require_user_pat=True)
    repo = env.repository(integration)
    env.user_token(integration, token="ghp_user_token_5678")
    job = run(env, queue_job(env, repo, as_user=True))
    assert job.status == "done"
    (used,) = host.credentials
    assert used is not None and used.token == "ghp_user_token_5678"
    assert "ghp_user_token_5678" not in str(job.result) + str(events(env))


def test_a_refused_user_token_is_marked_invalid(env: ActionEnv, host: FakeHost) -> None:
    integration = env.integration(require_user_pat=True)
    repo = env.repository(integration)
    env.user_token(integration)
    host.error = HostAuthError("GitHub refused the credentials (401): Bad credentials")
    job = run(env, queue_job(env, repo, as_user=True))
    assert job.error_code == "user_token_invalid" and "Enter a new token" in (job.error or "")
    token = env.session.scalars(select(UserToken)).one()
    assert token.invalid_reason and "Bad credentials" in token.invalid_reason
    # The next request asks for a new token instead of queueing.
    assert action_credentials.user_credentials(env.session, env.tenant_id, ACCOUNT, integration.id) is None


def test_a_token_deleted_after_queueing(env: ActionEnv, host: FakeHost) -> None:
    integration = env.integration(require_user_pat=True)
    repo = env.repository(integration)
    job = run(env, queue_job(env, repo, as_user=True))
    assert job.error_code == "user_token_required" and host.calls == []


# --------------------------------------------------------------------------- what changed since the request


def test_switched_off_or_removed_since_the_request(env: ActionEnv, host: FakeHost) -> None:
    integration = env.integration()
    repo = env.repository(integration)
    job_id = queue_job(env, repo)
    integration.features = merged_features(integration, {"create_branch": False})
    env.session.commit()
    assert run(env, job_id).error_code == "feature_disabled"

    gone = env.repository(env.integration("b"), removed=True)
    assert run(env, queue_job(env, gone)).error_code == "repository_not_found"
    assert host.calls == []


def test_request_callers_see_the_stored_result(env: ActionEnv, host: FakeHost) -> None:
    repo = env.repository(env.integration())
    job = run(env, queue_job(env, repo))
    body = action_status.job_payload(job)
    assert body["status"] == "done" and body["result"]["name"] == "ABC-1-login" and "error" not in body
