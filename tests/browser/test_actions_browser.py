"""The create-branch and create-pull-request dialogs in headless Chromium, end to end: the real
app on 127.0.0.1 opened the way Jira opens it, the real JSON API, jobs run by an RQ worker
between steps, a real git repository served over HTTP on loopback and GitHub's own API
description served by Prism. Atlassian's all.js is refused (only 127.0.0.1 is reachable), so
these also prove the dialogs work without AP.

Screenshots: test-artifacts/screenshots/<test name>.png (the ``page`` fixture) and
``actions-<step>.png`` for intermediate steps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from rq import SimpleWorker
from sqlalchemy import select

from connect_app.config import Settings
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.indexing.sync import run_index
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.models import ActionJob, ActionStatus, Trigger, UserToken, utcnow
from tests.support.browser import SCREENSHOTS_DIR, screenshot_path
from tests.support.connect import JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import run_git
from tests.support.http_server import LoopbackServer
from tests.support.indexing_fixtures import IndexingEnv
from tests.support.jira_stub import JiraStub, stub_issue
from tests.support.prism_fixtures import GITHUB_EXAMPLE_REPOSITORY, GitHubOnLoopback
from tests.web.development_data import DevData, tenant_id_of

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

ISSUE = "ABC-1"
SUMMARY = "Fix the login page"
IMG = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'
SCRIPT = "<script>window.__xss=(window.__xss||0)+100</script>"
SVG_BRANCH = "ABC-1-<svg/onload=window.__xss=1>"  # a valid git branch name


@pytest.fixture
def live(app: Flask) -> Iterator[LoopbackServer]:
    server = LoopbackServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def data(app: Flask, installed_site: JiraSite) -> Iterator[DevData]:
    with app.app_context():
        yield DevData(tenant_id_of(installed_site))


@pytest.fixture
def issue(jira_stub: JiraStub, installed_site: JiraSite) -> Iterator[str]:
    """ABC-1 exists in the stub Jira (create-options and submitting ask Jira for it)."""
    with jira_stub.lock:
        jira_stub.issues_by_client.setdefault(installed_site.client_key, {})[ISSUE] = stub_issue(summary=SUMMARY)
    yield ISSUE
    with jira_stub.lock:
        jira_stub.issues_by_client.pop(installed_site.client_key, None)


def offline(page: Any) -> list[str]:
    """Only 127.0.0.1 is reachable, for this page and every tab it opens."""
    refused: list[str] = []

    def route(r: Any) -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.context.route("**/*", route)
    return refused


def open_jira_create_branch(page: Any, live: LoopbackServer, site: JiraSite, summary: str = SUMMARY) -> list[str]:
    """As Jira's "Create branch" does: our templateUrl with {jwt} (a context token) in a new tab."""
    refused = offline(page)
    token = site.token("GET", "/", context=True)
    page.goto(f"{live.url}/actions/create-branch?issueKey={ISSUE}&issueSummary={quote(summary, safe='')}&jwt={token}")
    page.locator("#gcj-action[data-ready=true]").wait_for()
    return refused


def open_dialog(page: Any, live: LoopbackServer, site: JiraSite, path: str) -> None:
    """A dialogs module URL, signed by Jira for that URL."""
    offline(page)
    url = f"{path}?issueKey={ISSUE}&projectKey=ABC"
    page.goto(f"{live.url}{url}&jwt={site.token('GET', url)}")
    page.locator("#gcj-action[data-ready=true]").wait_for()


def state(page: Any, name: str) -> None:
    page.locator(f"#gcj-action[data-state={name}]").wait_for()


def run_actions(app: Flask) -> None:
    with app.app_context():
        SimpleWorker(["interactive"], connection=redis_conn.client).work(burst=True)


def shot(page: Any, name: str) -> None:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot_path(f"actions-{name}")), full_page=True)


def text(locator: Any) -> str:
    return " ".join(locator.inner_text().split())


@dataclass(frozen=True)
class Indexed:
    id: int
    name: str


def plain_git_repository(app: Flask, settings: Settings, site: JiraSite, served: ServedRepo) -> Indexed:
    """A plain-git integration over the loopback repository, indexed for real."""
    with app.app_context():
        env = IndexingEnv(app, settings, tenant_id_of(site))
        repo = env.add_repository(served.url, password=served.server.password)
        found = Indexed(repo.id, repo.name)
        run_index(found.id, Trigger.MANUAL)
        assert "feature/ABC-12-fix" in env.branches(env.reload(repo))
        return found


# --------------------------------------------------------------------------- create branch


def test_create_branch_in_a_real_git_repository(
    page: Any,
    app: Flask,
    settings: Settings,
    live: LoopbackServer,
    installed_site: JiraSite,
    git_repo: ServedRepo,
    issue: str,
) -> None:
    repo = plain_git_repository(app, settings, installed_site, git_repo)
    refused = open_jira_create_branch(page, live, installed_site)
    assert any("atl-paas.net" in url for url in refused)  # all.js was asked for and refused
    state(page, "form")

    assert page.get_by_label("Repository").input_value() == str(repo.id)
    source = page.get_by_label("Source branch")
    assert source.input_value() == "main"  # the default branch, preselected
    options = page.locator("#gcj-source-options option")
    options.first.wait_for(state="attached")
    names = [options.nth(i).get_attribute("value") for i in range(options.count())]
    assert names[0] == "main" and "feature/ABC-12-fix" in names  # the indexed branches
    name = page.get_by_label("Branch name")
    assert name.input_value() == "ABC-1-fix-the-login-page"  # the integration's template
    assert "Fix the login page" in text(page.locator(".gcj-action-issue"))
    shot(page, "branch-form")

    # keyboard only: edit the name, submit with Enter
    name.fill("feature/ABC-1-login")
    name.press("Enter")
    page.locator("#gcj-action[data-job-id]").wait_for()
    assert page.locator("#gcj-progress").is_visible()
    assert "Waiting for a worker" in text(page.locator("#gcj-progress"))
    shot(page, "branch-progress")

    run_actions(app)
    state(page, "done")
    result = page.locator("#gcj-result")
    assert "Branch created" in text(result)
    assert "feature/ABC-1-login" in text(result) and repo.name in text(result)
    refs = run_git("ls-remote", "--heads", git_repo.url.replace("http://", f"http://alice:{git_repo.server.password}@"))
    main = run_git("rev-parse", "refs/heads/main", cwd=git_repo.path).strip()
    assert f"{main}\trefs/heads/feature/ABC-1-login" in refs
    assert page.get_by_role("button", name="Close").is_visible()

    # the panel's data already shows the new branch (stored by the job, before any index run)
    with app.app_context():
        job = db.session.scalars(select(ActionJob)).one()
        assert job.status == ActionStatus.DONE.value and job.issue_key == ISSUE

    # the same name again: the host's refusal in words, and back to the form
    page.reload()
    state(page, "form")
    page.get_by_label("Branch name").fill("feature/ABC-1-login")
    page.get_by_role("button", name="Create branch").click()
    page.locator("#gcj-action[data-job-id]").wait_for()
    run_actions(app)
    state(page, "failed")
    failure = page.locator("#gcj-failure")
    assert "The branch was not created" in text(failure)
    assert "already exists" in text(failure)
    shot(page, "branch-exists")
    page.get_by_role("button", name="Change and try again").click()
    state(page, "form")
    assert page.evaluate("document.activeElement.id") == "gcj-name"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("my branch", "The branch name must not contain spaces."),
        ("feature..x", "The branch name must not contain \u201c..\u201d."),
        ("feature/.hidden", "has a part starting with \u201c.\u201d"),
        ("-rf", "must not start with \u201c-\u201d"),
        ("wip.lock", "has a part ending in \u201c.lock\u201d"),
        ("what?", "must not contain \u201c?\u201d"),
    ],
)
def test_invalid_branch_names_are_refused_in_the_dialog(
    page: Any, app: Flask, live: LoopbackServer, installed_site: JiraSite, data: DevData, name: str, words: str
) -> None:
    data.repository(data.integration("acme"), "api")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    open_jira_create_branch(page, live, installed_site)
    state(page, "form")
    field = page.get_by_label("Branch name")
    field.fill(name)
    error = page.locator("#gcj-name-error")
    assert words in error.inner_text()  # said while typing
    page.get_by_role("button", name="Create branch").click()
    assert words in error.inner_text()
    assert field.get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "gcj-name"
    assert posts == []  # nothing was sent
    with app.app_context():
        assert db.session.scalars(select(ActionJob)).all() == []


def test_rate_limited_job_says_when_to_retry(
    page: Any, app: Flask, live: LoopbackServer, installed_site: JiraSite, data: DevData, issue: str
) -> None:
    acme = data.integration("acme")
    data.repository(acme, "api")
    web = data.repository(acme, "web")
    open_jira_create_branch(page, live, installed_site)
    state(page, "form")
    repository = page.get_by_label("Repository")
    assert repository.input_value() != str(web.id)
    repository.select_option(str(web.id))
    page.get_by_role("button", name="Create branch").click()
    page.locator("#gcj-action[data-job-id]").wait_for()
    # What the worker records when the host answers 429 (services.action_runner): failed, retry_at.
    with app.app_context():
        job = db.session.scalars(select(ActionJob)).one()
        job.status, job.error_code = ActionStatus.FAILED.value, "rate_limited"
        job.error = "GitHub's rate limit for these credentials is used up."
        job.retry_at, job.finished_at = utcnow() + timedelta(minutes=3), utcnow()
        db.session.commit()
    state(page, "failed")
    failure = text(page.locator("#gcj-failure"))
    assert "rate limit for these credentials is used up" in failure
    assert "Try again after" in failure and "(in about 3 minutes)" in failure
    assert page.locator("#gcj-action").get_attribute("data-error-code") == "rate_limited"

    # the repository picked is remembered for the project
    open_jira_create_branch(page, live, installed_site)
    state(page, "form")
    assert page.get_by_label("Repository").input_value() == str(web.id)


def test_git_data_renders_as_text_in_the_dialogs(
    page: Any, app: Flask, live: LoopbackServer, installed_site: JiraSite, data: DevData, jira_stub: JiraStub
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    repo = data.repository(data.integration(f"evil {SCRIPT}"), f"repo{IMG}")
    data.branch(repo, SVG_BRANCH)
    data.branch(repo, f"x{IMG}")
    with jira_stub.lock:
        jira_stub.issues_by_client.setdefault(installed_site.client_key, {})[ISSUE] = stub_issue(summary=SCRIPT + IMG)
    try:
        open_dialog(page, live, installed_site, "/actions/create-pull-request")
        state(page, "form")
        page.locator("#gcj-source-options option").first.wait_for(state="attached")
        page.wait_for_timeout(300)  # give any injected handler a chance to fire
    finally:
        with jira_stub.lock:
            jira_stub.issues_by_client.pop(installed_site.client_key, None)

    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    count = "document.querySelectorAll('#gcj-action img, #gcj-action svg, #gcj-action script').length"
    assert page.evaluate(count) == 0
    repository = page.get_by_label("Repository")
    assert repository.locator("option").first.inner_text() == f"evil {SCRIPT}/repo{IMG}"
    assert repository.locator("optgroup").first.get_attribute("label") == f"evil {SCRIPT}"
    assert page.get_by_label("Title").input_value() == f"{ISSUE} {SCRIPT}{IMG}"  # summary from Jira
    expect(page.get_by_label("Source branch")).to_have_value(SVG_BRANCH)  # the branch naming the issue
    assert f"{SCRIPT}{IMG}" in text(page.locator(".gcj-action-issue"))


# --------------------------------------------------------------------------- pull request with the user's token


def github_integration(app: Flask, site: JiraSite, github: GitHubOnLoopback, *, require_user_pat: bool) -> int:
    with app.app_context():
        session = db.session()
        integration = create_integration(
            session,
            tenant_id_of(site),
            NewIntegration(
                provider=ProviderId.GITHUB,
                credentials=Credentials(AuthType.PAT, token="ghp_IntegrationToken0000000000000000"),
                display_name="GitHub octocat",
                base_url=github.base_url,
                require_user_pat=require_user_pat,
            ),
        )
        (repo,) = add_repositories(
            session,
            integration,
            [
                RemoteRepository(
                    external_id="1296269",  # the id in the description's examples
                    name=GITHUB_EXAMPLE_REPOSITORY,
                    clone_url=github.clone_url,
                    web_url=f"https://github.com/{GITHUB_EXAMPLE_REPOSITORY}",
                    default_branch="master",
                )
            ],
        )
        session.commit()
        DevData(integration.tenant_id).branch(repo, "feature/ABC-1-login")
        return integration.id


@pytest.mark.slow
def test_pull_request_asks_for_the_users_token_first(
    page: Any,
    app: Flask,
    live: LoopbackServer,
    installed_site: JiraSite,
    issue: str,
    prism_github_loopback: GitHubOnLoopback,
) -> None:
    integration_id = github_integration(app, installed_site, prism_github_loopback, require_user_pat=True)
    open_dialog(page, live, installed_site, "/actions/create-pull-request")
    state(page, "form")
    assert "you will be asked for it once" in text(page.locator("[data-repository-help]"))
    expect(page.get_by_label("Source branch")).to_have_value("feature/ABC-1-login")  # the branch naming the issue
    assert page.get_by_label("Target branch").input_value() == "master"
    assert page.get_by_label("Title").input_value() == f"{ISSUE} {SUMMARY}"
    body = page.get_by_label("Description").input_value()
    assert f"{installed_site.base_url}/browse/{ISSUE}" in body  # a link back to the issue
    shot(page, "pr-form")

    page.get_by_role("button", name="Create pull request").click()
    state(page, "token")
    token_form = page.locator("#gcj-token-form")
    assert "Add your token for GitHub octocat" in text(token_form)
    assert page.get_by_label("Username on Bitbucket").count() == 0  # GitHub takes a token alone
    shot(page, "pr-token")
    token = "ghp_UsersOwnToken000000000000000000000"
    page.get_by_label("Personal access token").fill(token)
    page.get_by_role("button", name="Save token and continue").click()
    page.locator("#gcj-action[data-job-id]").wait_for()
    assert page.get_by_label("Personal access token").input_value() == ""  # not kept in the page

    with app.app_context():
        (saved,) = db.session.scalars(select(UserToken)).all()
        assert saved.integration_id == integration_id and saved.account_id == "acct-user-1"
        assert token not in saved.credentials_encrypted and saved.last4 == token[-4:]
        job = db.session.scalars(select(ActionJob)).one()
        assert job.as_user is True

    run_actions(app)
    state(page, "done")
    result = page.locator("#gcj-result")
    assert "Pull request created" in text(result)
    link = result.locator("[data-result-link]")
    assert link.get_attribute("href") == f"https://github.com/{GITHUB_EXAMPLE_REPOSITORY}/pull/1347"
    assert link.get_attribute("target") == "_blank"
    shot(page, "pr-done")


DIALOG_AP = """
window.__closed = [];
window.AP = {
  resize: function () {},
  context: { getToken: function (cb) { cb(document.body.getAttribute("data-page-token")); } },
  dialog: { close: function (data) { window.__closed.push(data); } }
};
"""


def test_inside_an_ap_dialog_cancel_and_escape_close_it(
    page: Any, live: LoopbackServer, installed_site: JiraSite, data: DevData
) -> None:
    data.repository(data.integration("acme"), "api")
    page.add_init_script(DIALOG_AP)
    open_jira_create_branch(page, live, installed_site)
    state(page, "form")
    page.get_by_label("Branch name").press("Escape")
    page.get_by_role("button", name="Cancel").click()
    assert page.evaluate("window.__closed") == [{"created": False}, {"created": False}]


def test_another_tenant_sees_none_of_the_repositories(
    page: Any, live: LoopbackServer, installed_site: JiraSite, other_site: JiraSite, data: DevData
) -> None:
    data.repository(data.integration("acme"), "api")  # the first site's
    open_jira_create_branch(page, live, other_site)
    state(page, "unavailable")
    assert "No repository linked to this project allows creating branches" in text(page.locator("#gcj-unavailable"))
    assert page.get_by_label("Repository").locator("option").count() == 0
