"""Create branch / pull request through the API: every refusal before anything is created,
tenant isolation and visibility, the user's own token, the job status, the dialogs' options,
and real runs: against a loopback git repository (the branch exists in ``git ls-remote``
afterwards) and against GitHub's own API description served by Prism."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select, update

from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.hosts.plain_git import repository_key
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.models import ActionJob, ActionStatus, IntegrationStatus, UserPreference, utcnow
from connect_app.services import action_status, actions
from tests.support.connect import Jira, JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import run_git
from tests.support.jira_stub import JiraStub
from tests.web.action_support import ACCOUNT, ActionEnv, action_env, error_of, forget_issues


@pytest.fixture
def env(app: Flask, jira: Jira, installed_site: JiraSite, jira_stub: JiraStub) -> Iterator[ActionEnv]:
    with app.app_context():
        e = action_env(app, jira, installed_site, jira_stub)
        e.issue("ABC-1", "Fix the login page")
        yield e
    forget_issues(jira_stub, installed_site)


def branch_body(repo_id: int, **kw: Any) -> dict[str, Any]:
    return {"repository_id": repo_id, "source": "main", "name": "ABC-1-fix-the-login-page", **kw}


def pr_body(repo_id: int, **kw: Any) -> dict[str, Any]:
    return {
        "repository_id": repo_id,
        "source": "ABC-1-fix-the-login-page",
        "target": "main",
        "title": "ABC-1 Fix the login page",
        "body": "Jira issue: ABC-1",
        **kw,
    }


def assert_nothing_created(env: ActionEnv) -> None:
    assert env.action_jobs() == []
    assert env.queued_job_ids() == []


# --------------------------------------------------------------------------- refusals


def test_needs_a_context_token(env: ActionEnv) -> None:
    response = env.app.test_client().post("/api/issues/ABC-1/branches", json={})
    assert error_of(response, 401)["code"] == "jwt_missing"


def test_an_expired_jira_token_is_refused(env: ActionEnv) -> None:
    repo = env.repository(env.integration())
    response = env.jira.api(
        env.site, "POST", "/api/issues/ABC-1/branches", json_body=branch_body(repo.id), account_id=ACCOUNT, ttl=-600
    )
    assert response.status_code == 401
    assert_nothing_created(env)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a..b", "'..'"),
        ("a~1", "'~'"),
        ("a^b", "'^'"),
        ("a:b", "':'"),
        ("has space", "spaces"),
        ("-x", "start with '-'"),
        ("feature.lock", "'.lock'"),
        ("", "required"),
    ],
)
def test_bad_branch_names_are_refused_with_the_reason(env: ActionEnv, name: str, reason: str) -> None:
    repo = env.repository(env.integration())
    error = error_of(env.post_branch(**branch_body(repo.id, name=name)), 400)
    assert error["field"] == "name" and reason in error["message"]
    assert_nothing_created(env)


def test_bad_fields(env: ActionEnv) -> None:
    repo = env.repository(env.integration())
    assert error_of(env.post_branch(**branch_body(repo.id, source="a b")), 400)["field"] == "source"
    assert error_of(env.post_branch(**branch_body("seven")), 400)["field"] == "repository_id"
    assert error_of(env.post_branch(**branch_body(True)), 400)["field"] == "repository_id"
    same = pr_body(repo.id, source="main")
    assert error_of(env.post_pull_request(**same), 400)["code"] == "same_branch"
    assert error_of(env.post_pull_request(**pr_body(repo.id, title=" ")), 400)["field"] == "title"
    assert error_of(env.post_pull_request(**pr_body(repo.id, title="x" * 256)), 400)["field"] == "title"
    raw = env.jira.api(env.site, "POST", "/api/issues/ABC-1/branches", json_body=[1, 2], account_id=ACCOUNT)
    assert error_of(raw, 400)["code"] == "invalid_json"
    assert_nothing_created(env)


@pytest.mark.parametrize("key", ["ABC", "ABC-0", "1ABC-1", "A-1"])
def test_bad_issue_keys(env: ActionEnv, key: str) -> None:
    repo = env.repository(env.integration())
    assert error_of(env.post_branch(key, **branch_body(repo.id)), 400)["code"] == "bad_issue_key"
    assert_nothing_created(env)


def test_a_missing_issue_is_a_404(env: ActionEnv) -> None:
    repo = env.repository(env.integration())
    error = error_of(env.post_branch("ABC-999", **branch_body(repo.id)), 404)
    assert error["code"] == "issue_not_found" and "ABC-999" in error["message"]
    assert_nothing_created(env)


def test_another_tenants_repository_is_unknown(env: ActionEnv, other_site: JiraSite) -> None:
    theirs = action_env(env.app, env.jira, other_site, env.stub)
    their_repo = theirs.repository(theirs.integration("theirs"))
    error = error_of(env.post_branch(**branch_body(their_repo.id)), 404)
    assert error["code"] == "repository_not_found"
    assert error_of(env.post_branch(**branch_body(987654)), 404)["message"] == error["message"].replace(
        str(their_repo.id), "987654"
    )  # the same words: nothing tells the two apart
    assert_nothing_created(env)


def test_repositories_the_user_cannot_see(env: ActionEnv) -> None:
    other_project = env.repository(env.integration("a"), project_keys=("XYZ",))
    disabled = env.repository(env.integration("b"), enabled=False)
    removed = env.repository(env.integration("c"), removed=True)
    off = env.repository(env.integration("d", status=IntegrationStatus.DISABLED.value))
    enforced = env.repository(env.integration("e", enforce_permissions=True))  # no token: nothing shows
    for repo in (other_project, disabled, removed, off, enforced):
        assert error_of(env.post_branch(**branch_body(repo.id)), 404)["code"] == "repository_not_found"
    assert_nothing_created(env)


def test_capability_missing_and_feature_off(env: ActionEnv) -> None:
    plain = env.repository(env.integration("plain", provider=ProviderId.GIT))
    error = error_of(env.post_pull_request(**pr_body(plain.id)), 400)
    assert error["code"] == "action_unsupported" and "pull requests" in error["message"]
    off = env.repository(env.integration("off", features={"create_branch": False}))
    error = error_of(env.post_branch(**branch_body(off.id)), 403)
    assert error["code"] == "feature_disabled" and "administrator" in error["message"]
    assert_nothing_created(env)


def test_refused_integration_credentials(env: ActionEnv) -> None:
    repo = env.repository(env.integration(status=IntegrationStatus.AUTH_FAILED.value))
    assert error_of(env.post_branch(**branch_body(repo.id)), 409)["code"] == "credentials_refused"
    assert_nothing_created(env)


def test_require_user_pat_without_a_token_asks_for_it(env: ActionEnv) -> None:
    integration = env.integration("Acme GitHub", require_user_pat=True)
    repo = env.repository(integration)
    error = error_of(env.post_branch(**branch_body(repo.id)), 409)
    assert error["code"] == "user_token_required"
    assert error["integration"] == {"id": integration.id, "display_name": "Acme GitHub", "provider": "github"}
    assert_nothing_created(env)
    options = env.get("/api/issues/ABC-1/create-options?summary=x").get_json()
    assert [r["needs_user_token"] for r in options["repositories"]] == [True]


def test_require_user_pat_with_a_token_queues_a_job_as_the_user(env: ActionEnv) -> None:
    integration = env.integration(require_user_pat=True)
    repo = env.repository(integration)
    env.user_token(integration)
    response = env.post_branch(**branch_body(repo.id))
    assert response.status_code == 202, response.get_data(as_text=True)
    (job,) = env.action_jobs()
    assert job.as_user is True and "user-secret-token" not in str(job.request)
    options = env.get("/api/issues/ABC-1/create-options?summary=x").get_json()
    assert [r["needs_user_token"] for r in options["repositories"]] == [False]


def test_redis_down_is_a_503_and_leaves_no_queued_row(env: ActionEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = env.repository(env.integration())

    def down(*_a: Any, **_kw: Any) -> None:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(actions, "enqueue", down)
    error = error_of(env.post_branch(**branch_body(repo.id)), 503)
    assert error["code"] == "queue_unavailable" and "nothing was created" in error["message"]
    (job,) = env.action_jobs()
    assert job.status == ActionStatus.FAILED.value and job.error_code == "queue_unavailable"


# --------------------------------------------------------------------------- queued jobs and their status


def test_a_request_is_queued_and_remembered(env: ActionEnv) -> None:
    repo = env.repository(env.integration())
    response = env.post_branch(**branch_body(repo.id))
    assert response.status_code == 202
    job_id = response.get_json()["job_id"]
    assert response.headers["Location"].endswith(f"/api/jobs/{job_id}")
    assert env.queued_job_ids() == [f"action-{job_id}"]
    status = env.job(job_id)
    assert (status["status"], status["kind"], status["issue_key"]) == ("queued", "create_branch", "ABC-1")
    assert "result" not in status and "error" not in status
    pref = env.session.scalars(select(UserPreference)).one()
    assert (pref.account_id, pref.name, pref.value) == (ACCOUNT, "create_branch.repository.ABC", repo.id)


def test_jobs_are_private_to_their_user_and_site(env: ActionEnv, other_site: JiraSite) -> None:
    repo = env.repository(env.integration())
    job_id = env.post_branch(**branch_body(repo.id)).get_json()["job_id"]
    assert env.get(f"/api/jobs/{job_id}").status_code == 200
    assert error_of(env.get(f"/api/jobs/{job_id}", account_id="someone-else"), 404)["code"] == "job_not_found"
    assert error_of(env.get(f"/api/jobs/{job_id}", site=other_site), 404)["code"] == "job_not_found"
    assert error_of(env.get("/api/jobs/no-such-job"), 404)["code"] == "job_not_found"


def test_a_job_that_never_reports_turns_failed(env: ActionEnv) -> None:
    repo = env.repository(env.integration())
    job_id = env.post_branch(**branch_body(repo.id)).get_json()["job_id"]
    old = utcnow() - action_status.STALE_AFTER - timedelta(minutes=1)
    env.session.execute(update(ActionJob).where(ActionJob.id == job_id).values(status="running", updated_at=old))
    env.session.commit()
    status = env.job(job_id)
    assert status["status"] == "failed" and status["error"]["code"] == "job_lost"


# --------------------------------------------------------------------------- create options and branch pickers


def test_create_options(env: ActionEnv) -> None:
    github = env.integration("Acme", features={"branch_name_template": "feature/${issuekey}-${summary}"})
    plain = env.integration("Plain", provider=ProviderId.GIT)
    widgets = env.repository(github, "widgets")
    gadgets = env.repository(github, "gadgets")
    scripts = env.repository(plain, "scripts")
    env.repository(github, "elsewhere", project_keys=("XYZ",))  # another project's
    branchless = env.repository(env.integration("Off", features={"create_branch": False}), "no-branches")

    body = env.get("/api/issues/abc-1/create-options?action=branch").get_json()  # no summary: Jira is asked
    assert [r["name"] for r in body["repositories"]] == ["Acme/gadgets", "Acme/widgets", "Plain/scripts"]
    first = body["repositories"][0]
    assert first["integration"] == {"id": github.id, "display_name": "Acme", "provider": "github"}
    assert first["default_branch"] == "main" and first["can_create_branch"] and first["can_create_pull_request"]
    assert first["branch_name"] == "feature/ABC-1-fix-the-login-page"
    assert body["repositories"][2]["branch_name"] == "ABC-1-fix-the-login-page"  # Plain's default template
    assert body["repositories"][2]["can_create_pull_request"] is False
    assert body["last_repository_id"] is None and body["branch_name"] == "feature/ABC-1-fix-the-login-page"
    assert body["issue"]["summary"] == "Fix the login page" and body["issue"]["issue_type"] == "Bug"
    browse = f"{env.site.base_url}/browse/ABC-1"
    assert body["pull_request"]["title"] == "ABC-1 Fix the login page"
    assert f"[ABC-1]({browse})" in body["pull_request"]["body"]

    prs = env.get("/api/issues/ABC-1/create-options?action=pull_request&summary=Other").get_json()
    assert [r["id"] for r in prs["repositories"]] == [gadgets.id, widgets.id, branchless.id]  # plain git cannot
    assert prs["pull_request"]["title"] == "ABC-1 Other"

    env.post_branch(**branch_body(scripts.id))
    again = env.get("/api/issues/ABC-1/create-options?summary=Fix").get_json()
    assert again["last_repository_id"] == scripts.id and again["branch_name"] == "ABC-1-fix"
    assert error_of(env.get("/api/issues/ABC-1/create-options?action=merge"), 400)["code"] == "bad_action"
    assert error_of(env.get("/api/issues/ABC-404/create-options"), 404)["code"] == "issue_not_found"


def test_create_options_hide_other_tenants(env: ActionEnv, other_site: JiraSite) -> None:
    theirs = action_env(env.app, env.jira, other_site, env.stub)
    theirs.repository(theirs.integration("theirs"))
    body = env.get("/api/issues/ABC-1/create-options?summary=x").get_json()
    assert body["repositories"] == [] and body["branch_name"] == "ABC-1-x"


def test_branch_names_for_the_pickers(env: ActionEnv, other_site: JiraSite) -> None:
    repo = env.repository(env.integration())
    for name in ("develop", "main", "feature/ABC-1", "feature/ABC-2", "100%_done"):
        env.data.branch(repo, name)
    body = env.get(f"/api/repositories/{repo.id}/branches").get_json()
    assert body["branches"] == ["main", "100%_done", "develop", "feature/ABC-1", "feature/ABC-2"]
    assert body["default_branch"] == "main" and body["truncated"] is False
    assert env.get(f"/api/repositories/{repo.id}/branches?q=FEATURE").get_json()["branches"] == [
        "feature/ABC-1",
        "feature/ABC-2",
    ]
    assert env.get(f"/api/repositories/{repo.id}/branches?q=%25_").get_json()["branches"] == ["100%_done"]
    hidden = env.repository(env.integration("hidden", enforce_permissions=True))
    assert error_of(env.get(f"/api/repositories/{hidden.id}/branches"), 404)["code"] == "repository_not_found"
    assert error_of(env.get(f"/api/repositories/{repo.id}/branches", site=other_site), 404)


# --------------------------------------------------------------------------- real runs


def _plain_git_repository(env: ActionEnv, served: ServedRepo) -> int:
    integration = create_integration(
        env.session,
        env.tenant_id,
        NewIntegration(
            provider=ProviderId.GIT,
            credentials=Credentials(
                AuthType.PASSWORD, username=served.server.username, password=served.server.password
            ),
            display_name="Loopback git",
            base_url=served.url,
        ),
    )
    external_id, name = repository_key(served.url)
    (repo,) = add_repositories(
        env.session,
        integration,
        [RemoteRepository(external_id=external_id, name=name, clone_url=served.url, default_branch="main")],
    )
    env.session.commit()
    return repo.id


def test_create_a_branch_in_a_real_git_repository(env: ActionEnv, git_repo: ServedRepo) -> None:
    repo_id = _plain_git_repository(env, git_repo)
    options = env.get("/api/issues/ABC-1/create-options").get_json()
    name = options["branch_name"]
    assert name == "ABC-1-fix-the-login-page"

    response = env.post_branch(**branch_body(repo_id, name=name))
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["job_id"]
    env.drain()

    status = env.job(job_id)
    assert status["status"] == "done", status
    assert status["result"]["name"] == name and status["result"]["repository"]["id"] == repo_id
    heads = run_git("ls-remote", "--heads", str(git_repo.path))
    main = run_git("rev-parse", "refs/heads/main", cwd=git_repo.path).strip()
    assert f"{main}\trefs/heads/{name}" in heads.splitlines()

    # Linked to the issue right away, before any index run.
    development = env.get("/api/issues/ABC-1/development").get_json()
    assert [(b["name"], b["repository"]["id"]) for b in development["branches"]] == [(name, repo_id)]

    # The same name again: refused by the host, in words.
    again = env.post_branch(**branch_body(repo_id, name=name)).get_json()["job_id"]
    env.drain()
    failed = env.job(again)
    assert failed["status"] == "failed" and failed["error"]["code"] == "branch_exists"
    assert name in failed["error"]["message"]


@pytest.mark.slow
def test_create_a_branch_and_a_pull_request_on_github(env: ActionEnv, prism_github: Any) -> None:
    integration = env.integration("octocat", base_url=prism_github.base_url)
    repo = env.repository(integration, "Hello-World")
    branch_job = env.post_branch(**branch_body(repo.id)).get_json()["job_id"]
    pr_job = env.post_pull_request(**pr_body(repo.id)).get_json()["job_id"]
    env.drain()

    branch = env.job(branch_job)
    assert branch["status"] == "done", branch
    assert branch["result"]["name"] == "ABC-1-fix-the-login-page"
    assert branch["result"]["url"] == "https://github.com/octocat/Hello-World/tree/ABC-1-fix-the-login-page"
    pr = env.job(pr_job)
    assert pr["status"] == "done", pr
    assert pr["result"]["id"] == "1347" and pr["result"]["url"].endswith("/pull/1347")  # the description's example

    development = env.get("/api/issues/ABC-1/development").get_json()
    assert [b["name"] for b in development["branches"]] == ["ABC-1-fix-the-login-page"]
    assert [p["id"] for p in development["pull_requests"]] == ["1347"]
    # The Development panel feature is on: a sync of the repository was requested.
    assert f"jira-sync-{repo.id}" in env.queued_job_ids("maintenance")


def test_jira_rate_limiting_says_when_to_retry(env: ActionEnv) -> None:
    repo = env.repository(env.integration())
    env.stub.retry_after = "120"
    env.stub.rate_limit_next = 1
    try:
        error = error_of(env.post_branch(**branch_body(repo.id)), 429)
    finally:
        env.stub.rate_limit_next, env.stub.retry_after = 0, "1"
    assert error["code"] == "rate_limited" and error["retry_at"].endswith("Z")
    assert_nothing_created(env)


def test_an_unusable_stored_template_falls_back_to_the_default(env: ActionEnv) -> None:
    env.repository(env.integration(features={"branch_name_template": "no variables at all"}))
    body = env.get("/api/issues/ABC-1/create-options?summary=Fix it").get_json()
    assert body["repositories"][0]["branch_name"] == body["branch_name"] == "ABC-1-fix-it"
