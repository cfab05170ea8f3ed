"""The request side of create branch / pull request, below the HTTP layer: parsing, the Jira
issue lookup (against the Jira stub, shaped like the platform description's IssueBean), the
order of the checks (nothing stored or queued when one fails), the remembered repository and
the queued RQ job's settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from rq.job import Job
from sqlalchemy import select

from connect_app.errors import AppError, NotFound, ValidationError
from connect_app.extensions import redis_conn
from connect_app.models import ActionKind, Tenant, UserPreference
from connect_app.services import action_input, actions
from connect_app.services.admin_input import FieldError
from tests.support.connect import Jira, JiraSite
from tests.support.jira_stub import JiraStub
from tests.web.action_support import ACCOUNT, ActionEnv, action_env, forget_issues


@pytest.fixture
def env(app: Flask, jira: Jira, installed_site: JiraSite, jira_stub: JiraStub) -> Iterator[ActionEnv]:
    with app.app_context():
        yield action_env(app, jira, installed_site, jira_stub)
    forget_issues(jira_stub, installed_site)


def tenant(env: ActionEnv) -> Tenant:
    found = env.session.get(Tenant, env.tenant_id)
    assert found is not None
    return found


def request(env: ActionEnv, kind: ActionKind, data: Any, *, key: str = "ABC-1", **kw: Any) -> Any:
    kw.setdefault("lookup", lambda _t, k: actions.Issue(k, "Fix login", "Bug", k.split("-")[0]))
    kw.setdefault("account_id", ACCOUNT)
    return actions.request_action(
        env.session, redis_conn.client, tenant=tenant(env), issue_key=key, kind=kind, data=data, **kw
    )


# --------------------------------------------------------------------------- parsing


def test_parse_branch_request() -> None:
    parsed = action_input.parse_branch_request({"repository_id": "7", "source": " main ", "name": "ABC-1-x"})
    assert parsed == action_input.BranchRequest(7, "main", "ABC-1-x")
    assert action_input.parse_branch_request({"repository_id": 7, "source": "a" * 40, "name": "b"}).source == "a" * 40


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (None, "body"),
        ({"source": "main", "name": "x"}, "repository_id"),
        ({"repository_id": -1, "source": "main", "name": "x"}, "repository_id"),
        ({"repository_id": 2**40, "source": "main", "name": "x"}, "repository_id"),
        ({"repository_id": 1, "name": "x"}, "source"),
        ({"repository_id": 1, "source": "main", "name": 5}, "name"),
        ({"repository_id": 1, "source": "main", "name": "x\x00y"}, "name"),
        ({"repository_id": 1, "source": "ma..in", "name": "x"}, "source"),
    ],
)
def test_parse_branch_request_refusals(data: Any, field: str) -> None:
    with pytest.raises(FieldError) as e:
        action_input.parse_branch_request(data)
    assert e.value.field == field


def test_parse_pull_request_request() -> None:
    data = {"repository_id": 3, "source": "feature", "target": "main", "title": " T ", "body": None}
    assert action_input.parse_pull_request_request(data) == action_input.PullRequestRequest(
        3, "feature", "main", "T", ""
    )
    with pytest.raises(FieldError) as e:
        action_input.parse_pull_request_request({**data, "body": "x" * (action_input.BODY_MAX_LENGTH + 1)})
    assert e.value.field == "body"
    with pytest.raises(FieldError) as e:
        action_input.parse_pull_request_request({**data, "target": "refs/../main"})
    assert e.value.field == "target"


def test_parse_issue_key() -> None:
    assert action_input.parse_issue_key(" abc-12 ") == "ABC-12"
    with pytest.raises(ValidationError):
        action_input.parse_issue_key("ABC-12; DROP")


# --------------------------------------------------------------------------- the issue, from Jira


def test_fetch_issue_from_jira(env: ActionEnv) -> None:
    env.issue("ABC-7", "Make it fast", "Story")
    issue = actions.fetch_issue(tenant(env), "ABC-7")
    assert issue == actions.Issue("ABC-7", "Make it fast", "Story", "ABC")
    (call,) = [c for c in env.stub.calls if c.path == "/rest/api/3/issue/ABC-7"]
    assert call.auth_ok and call.query == {"fields": ["summary,issuetype,project"]}
    with pytest.raises(NotFound) as e:
        actions.fetch_issue(tenant(env), "ABC-8")
    assert e.value.code == "issue_not_found"


def test_an_issue_moved_to_another_project_is_checked_there_too(env: ActionEnv) -> None:
    repo = env.repository(env.integration(), project_keys=("ABC",))
    moved = lambda _t, _k: actions.Issue("NEW-3", "Moved", "Task", "NEW")  # noqa: E731
    with pytest.raises(NotFound) as e:
        request(env, ActionKind.CREATE_BRANCH, {"repository_id": repo.id, "source": "main", "name": "x"}, lookup=moved)
    assert e.value.code == "repository_not_found"
    assert env.action_jobs() == []


# --------------------------------------------------------------------------- order of checks


def test_jira_is_not_asked_when_the_request_is_refused_locally(env: ActionEnv) -> None:
    asked: list[str] = []

    def lookup(_t: Tenant, key: str) -> actions.Issue:
        asked.append(key)
        return actions.Issue(key, "", "", "ABC")

    with pytest.raises(FieldError):
        request(env, ActionKind.CREATE_BRANCH, {"repository_id": 1, "source": "main", "name": "a b"}, lookup=lookup)
    with pytest.raises(NotFound):
        request(env, ActionKind.CREATE_BRANCH, {"repository_id": 1, "source": "main", "name": "ok"}, lookup=lookup)
    assert asked == [] and env.action_jobs() == []


def test_an_anonymous_token_cannot_act(env: ActionEnv) -> None:
    repo = env.repository(env.integration())
    with pytest.raises(AppError) as e:
        request(
            env, ActionKind.CREATE_BRANCH, {"repository_id": repo.id, "source": "main", "name": "x"}, account_id=None
        )
    assert e.value.code == "no_user" and e.value.status == 403


# --------------------------------------------------------------------------- queueing


def test_the_queued_job(env: ActionEnv) -> None:
    repo = env.repository(env.integration())
    data = {"repository_id": repo.id, "source": "develop", "target": "main", "title": "ABC-1 Fix", "body": "b"}
    job = request(env, ActionKind.CREATE_PULL_REQUEST, data)
    assert (job.kind, job.status, job.issue_key, job.repository_id, job.as_user) == (
        "create_pull_request",
        "queued",
        "ABC-1",
        repo.id,
        False,
    )
    assert job.request == {"source": "develop", "target": "main", "title": "ABC-1 Fix", "body": "b"}
    rq_job = Job.fetch(f"action-{job.id}", connection=redis_conn.client)
    assert rq_job.func_name == "workers.jobs.run_action" and rq_job.args == (job.id,)
    assert rq_job.origin == "interactive" and rq_job.timeout == actions.JOB_TIMEOUT_SECONDS
    assert rq_job.result_ttl == actions.JOB_RESULT_TTL and rq_job.failure_ttl == actions.JOB_FAILURE_TTL
    assert rq_job.retries_left is None  # never retried: creating twice is worse than failing once


def test_the_last_repository_is_remembered_per_project(env: ActionEnv) -> None:
    integration = env.integration()
    first, second = env.repository(integration, "a"), env.repository(integration, "b")
    for repo in (first, second):
        request(env, ActionKind.CREATE_BRANCH, {"repository_id": repo.id, "source": "main", "name": "x"})
    request(env, ActionKind.CREATE_BRANCH, {"repository_id": first.id, "source": "main", "name": "y"}, key="XYZ-1")
    prefs = {p.name: p.value for p in env.session.scalars(select(UserPreference))}
    assert prefs == {"create_branch.repository.ABC": second.id, "create_branch.repository.XYZ": first.id}
    assert actions.last_repository(env.session, env.tenant_id, ACCOUNT, "ABC") == second.id
    assert actions.last_repository(env.session, env.tenant_id, "someone-else", "ABC") is None
