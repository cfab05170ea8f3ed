"""The issue panel in headless Chromium, served by the real app on 127.0.0.1 and opened the way
Jira opens it (module URL + JWT). Atlassian's all.js is blocked (every request that is not to
127.0.0.1 is aborted), so these also prove the panel works without AP.

Screenshots: test-artifacts/screenshots/<test name>.png (the ``page`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from connect_app.hosts.base import ProviderId
from connect_app.models import RepositoryStatus
from tests.support.browser import screenshot_path
from tests.support.connect import JiraSite
from tests.support.http_server import LoopbackServer
from tests.support.jira_stub import JiraStub, stub_issue
from tests.web.development_data import T0, DevData, tenant_id_of

pytestmark = pytest.mark.browser

IMG = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'
SCRIPT = "<script>window.__xss=(window.__xss||0)+100</script>"
SVG = '"><svg onload="window.__xss=(window.__xss||0)+10000">'


@pytest.fixture
def live(app: Flask) -> Iterator[LoopbackServer]:
    server = LoopbackServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def data(app: Flask, installed_site: JiraSite) -> Iterator[DevData]:
    with app.app_context():
        yield DevData(tenant_id_of(installed_site))


class Blocked:
    def __init__(self) -> None:
        self.hosts: list[str] = []


def open_panel(page: Any, live: LoopbackServer, site: JiraSite, key: str = "ABC-1") -> Blocked:
    """Open the panel as Jira would; only 127.0.0.1 is reachable (all.js is refused)."""
    blocked = Blocked()

    def route(r: Any) -> None:
        host = urlsplit(r.request.url).hostname
        if host == "127.0.0.1":
            r.continue_()
        else:
            blocked.hosts.append(host or "")
            r.abort()

    page.route("**/*", route)
    path = f"/panel/issue?issueKey={key}&projectKey={key.split('-')[0]}"
    token = site.token("GET", path)
    page.goto(f"{live.url}{path}&jwt={token}")
    page.wait_for_selector("#gcj-dev[data-ready=true]")
    return blocked


def test_panel_shows_grouped_data_and_pages(
    page: Any, live: LoopbackServer, installed_site: JiraSite, data: DevData
) -> None:
    acme = data.integration("acme")
    api, web = data.repository(acme, "api"), data.repository(acme, "web")
    for i in range(60):
        data.commit(api, f"ABC-1 api change {i}", at=T0 + timedelta(minutes=i), flush=False)
    data.session.commit()
    head = data.commit(web, "ABC-1 web change\n\nwith a body", at=T0 + timedelta(days=1), branch="feature/ABC-1-login")
    data.tag(web, "v1.2.0", head.sha)
    login = data.branch(web, "feature/ABC-1-login", head=head.sha, at=T0 + timedelta(days=2))
    login.ahead, login.behind, login.compared_head_sha = 1, 4, head.sha
    data.session.commit()
    data.pull_request(web, "ABC-1 Login page", number="12", source="feature/ABC-1-login", at=T0 + timedelta(days=3))

    blocked = open_panel(page, live, installed_site)
    assert any("atl-paas.net" in h for h in blocked.hosts)  # all.js was asked for and refused

    counts = page.locator("#gcj-counts")
    assert " ".join(counts.inner_text().split()) == "61 commits · 1 branch · 1 pull request"
    assert page.locator("#gcj-empty").is_hidden()
    groups = page.locator(".gcj-repo")
    assert groups.count() == 2
    # newest activity first: web (PR three days in) before api
    assert groups.nth(0).locator(".gcj-repo-name").inner_text() == "acme/web"
    web_group = groups.nth(0)
    assert web_group.locator(".gcj-pr .gcj-title").inner_text() == "ABC-1 Login page"
    assert web_group.locator(".gcj-pr .gcj-title").get_attribute("href") == "https://github.com/acme/web/pull/12"
    assert web_group.locator(".gcj-branch .gcj-title").inner_text() == "feature/ABC-1-login"
    assert web_group.locator(".gcj-commit .gcj-message").inner_text() == "ABC-1 web change"
    assert web_group.locator(".gcj-commit .gcj-sha").get_attribute("href").endswith(f"/commit/{head.sha}")
    assert web_group.locator(".gcj-tags .gcj-tag").inner_text() == "v1.2.0"
    assert web_group.locator(".gcj-commit .gcj-commit-branch").inner_text() == "feature/ABC-1-login"
    assert web_group.locator(".gcj-branch .gcj-ahead-behind").inner_text() == "1 ahead, 4 behind main"

    api_commits = groups.nth(1).locator(".gcj-commit")
    assert api_commits.count() == 49  # 50 on the first page, one of them in web
    assert api_commits.first.locator(".gcj-message").inner_text() == "ABC-1 api change 59"
    more = page.get_by_role("button", name="Show more")
    assert more.is_visible()
    more.click()
    page.locator(".gcj-repo .gcj-commit").nth(60).wait_for()  # (no wait_for_function: the CSP forbids eval)
    assert page.locator(".gcj-repo .gcj-commit").count() == 61
    assert api_commits.last.locator(".gcj-message").inner_text() == "ABC-1 api change 0"
    assert more.is_hidden()
    assert groups.count() == 2


def test_git_data_renders_as_text(page: Any, live: LoopbackServer, installed_site: JiraSite, data: DevData) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    repo = data.repository(data.integration(f"evil {SCRIPT}"), f"repo{IMG}")
    head = data.commit(
        repo, f"ABC-1 {IMG} {SCRIPT}\n\n{SVG}", author=(f"Mallory {IMG}", "m@example.com"), branch=f"b{IMG}"
    )
    data.tag(repo, f"v1{SVG}", head.sha)
    data.branch(repo, f"ABC-1-{SVG}", head=head.sha)
    data.pull_request(repo, f"ABC-1 {SCRIPT}{IMG}", source=f"x{SVG}", author=SCRIPT, url="javascript:window.__xss=1")

    open_panel(page, live, installed_site)
    page.wait_for_timeout(300)  # give any injected handler a chance to fire

    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    panel = page.locator("#gcj-dev")
    # nothing from git became an element
    assert page.evaluate("document.querySelectorAll('#gcj-dev img, #gcj-dev svg, #gcj-dev script').length") == 0
    text = panel.inner_text()
    assert f"ABC-1 {IMG} {SCRIPT}" in text  # shown literally, first line only
    assert f"ABC-1-{SVG}" in text and f"ABC-1 {SCRIPT}{IMG}" in text and f"repo{IMG}" in text
    assert f"Mallory {IMG}" in text and f"v1{SVG}" in text and f"b{IMG}" in text
    # a javascript: URL never becomes a link
    pr_title = page.locator(".gcj-pr .gcj-title")
    assert pr_title.evaluate("n => n.tagName") == "SPAN" and pr_title.get_attribute("href") is None
    commit_message = page.locator(".gcj-commit .gcj-message")
    assert commit_message.get_attribute("title") == f"ABC-1 {IMG} {SCRIPT}\n\n{SVG}"


def test_empty_panel_and_notices(page: Any, live: LoopbackServer, installed_site: JiraSite, data: DevData) -> None:
    open_panel(page, live, installed_site, "ABC-404")
    empty = page.locator("#gcj-empty")
    assert empty.is_visible()
    assert "in a commit message, a branch name" in empty.inner_text()
    assert "feature/ABC-404-short-description" in empty.inner_text()
    assert page.locator("#gcj-indexing").is_hidden() and page.locator("#gcj-needs-token").is_hidden()
    assert page.get_by_role("button", name="Show more").is_hidden()


def test_indexing_and_token_notices(page: Any, live: LoopbackServer, installed_site: JiraSite, data: DevData) -> None:
    data.repository(data.integration("acme"), "fresh", status=RepositoryStatus.INDEXING.value, indexed=False)
    data.integration("Private GitHub", enforce_permissions=True)
    open_panel(page, live, installed_site)
    indexing = page.locator("#gcj-indexing")
    assert indexing.is_visible() and "Indexing acme/fresh for the first time" in " ".join(indexing.inner_text().split())
    token = page.locator("#gcj-needs-token")
    assert token.is_visible() and "Private GitHub" in token.inner_text()
    assert token.get_by_role("link", name="Add your token for Private GitHub").get_attribute("target") == "_top"
    assert page.locator("#gcj-empty").is_hidden()  # not "nothing links here" while indexing runs
    target = screenshot_path("panel-notices")
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)


# --------------------------------------------------------------------------- actions and prompts


def test_token_prompt_links_to_user_settings_per_integration(
    page: Any, live: LoopbackServer, installed_site: JiraSite, data: DevData
) -> None:
    locked = data.integration("Private GitHub", enforce_permissions=True)
    other = data.integration(f"Team {SCRIPT}", enforce_permissions=True)
    open_panel(page, live, installed_site)
    prompt = page.locator("#gcj-needs-token")
    assert prompt.is_visible()
    tokens = f"{installed_site.base_url}/plugins/servlet/ac/git-connect-for-jira/my-git-tokens"
    for integration, name in ((locked, "Private GitHub"), (other, f"Team {SCRIPT}")):
        link = prompt.get_by_role("link", name=f"Add your token for {name}", exact=True)
        # the user settings page inside Jira (generalPages), told which integration to open
        assert link.get_attribute("href") == f"{tokens}?ac.integration={integration.id}"
        assert link.get_attribute("target") == "_top"
    assert prompt.get_by_role("link", name="Manage your git tokens").get_attribute("href") == tokens
    assert page.evaluate("document.querySelectorAll('#gcj-dev script').length") == 0
    assert page.evaluate("window.__xss") is None


def action_links(page: Any) -> tuple[Any, Any]:
    page.locator("#gcj-dev[data-actions-ready=true]").wait_for()
    return page.locator("#gcj-create-branch"), page.locator("#gcj-create-pull-request")


def test_action_buttons_follow_what_repositories_allow(
    page: Any, live: LoopbackServer, installed_site: JiraSite, data: DevData
) -> None:
    # nothing connected: no buttons, the browse link is there all the same
    open_panel(page, live, installed_site)
    branch, pull_request = action_links(page)
    assert branch.is_hidden() and pull_request.is_hidden()
    browse = page.get_by_role("link", name="Browse repositories")
    assert browse.get_attribute("href") == (
        f"{installed_site.base_url}/plugins/servlet/ac/git-connect-for-jira/git-repository-browser"
    )
    assert browse.get_attribute("target") == "_top"

    # plain git creates branches, never pull requests
    data.repository(data.integration("server", provider=ProviderId.GIT), "tools")
    open_panel(page, live, installed_site)
    branch, pull_request = action_links(page)
    assert branch.is_visible() and pull_request.is_hidden()

    # GitHub does both
    data.repository(data.integration("acme"), "api")
    open_panel(page, live, installed_site)
    branch, pull_request = action_links(page)
    assert branch.is_visible() and pull_request.is_visible()


def test_action_buttons_open_the_dialog_in_a_tab_without_ap(
    page: Any, live: LoopbackServer, installed_site: JiraSite, data: DevData, jira_stub: JiraStub
) -> None:
    data.repository(data.integration("acme"), "api")
    with jira_stub.lock:  # the site's client key is new for each test: nothing to clean up
        issues = jira_stub.issues_by_client.setdefault(installed_site.client_key, {})
        issues["ABC-1"] = stub_issue(summary="Fix the login page")
    page.context.route(  # the new tab is as offline as the panel
        "**/*", lambda r: r.continue_() if urlsplit(r.request.url).hostname == "127.0.0.1" else r.abort()
    )
    open_panel(page, live, installed_site)
    _, pull_request = action_links(page)
    with page.context.expect_page() as opened:
        pull_request.press("Enter")  # keyboard works: the buttons are links
    dialog = opened.value
    dialog.locator("#gcj-action[data-state=form]").wait_for()
    assert dialog.locator("h1").inner_text() == "Create pull request"
    assert dialog.get_by_label("Repository").locator("option").first.inner_text() == "acme/api"
    assert dialog.get_by_label("Target branch").input_value() == "main"
    # the panel knows no summary: the dialog's API asked Jira for it
    assert dialog.get_by_label("Title").input_value() == "ABC-1 Fix the login page"
    target = screenshot_path("panel-pull-request-tab")
    target.parent.mkdir(parents=True, exist_ok=True)
    dialog.screenshot(path=str(target), full_page=True)
    dialog.close()


# What Jira's all.js offers the panel, recorded: AP.dialog.create and the dialog's close event.
FAKE_AP = """
window.__dialogs = [];
window.AP = {
  resize: function () {},
  context: { getToken: function (cb) { cb(document.body.getAttribute("data-page-token")); } },
  dialog: {
    create: function (options) {
      var dialog = { options: options, handlers: {} };
      window.__dialogs.push(dialog);
      return { on: function (event, cb) { dialog.handlers[event] = cb; } };
    }
  }
};
window.__closeDialog = function (data) { window.__dialogs[window.__dialogs.length - 1].handlers.close(data); };
"""


def test_inside_jira_the_buttons_open_dialog_modules(
    page: Any, live: LoopbackServer, installed_site: JiraSite, data: DevData
) -> None:
    repo = data.repository(data.integration("acme"), "api")
    page.add_init_script(FAKE_AP)
    open_panel(page, live, installed_site)
    branch, _ = action_links(page)
    pages_before = len(page.context.pages)
    branch.click()
    dialogs = page.evaluate("window.__dialogs.map(function (d) { return d.options; })")
    assert dialogs == [
        {"key": "git-connect-create-branch", "size": "medium", "chrome": False, "customData": {"issueKey": "ABC-1"}}
    ]
    assert len(page.context.pages) == pages_before  # no new tab
    # the dialog created a branch and closed: the panel shows it without a reload
    data.branch(repo, "feature/ABC-1-from-dialog")
    page.evaluate("window.__closeDialog({created: true})")
    page.locator(".gcj-branch .gcj-title").wait_for()
    assert page.locator(".gcj-branch .gcj-title").inner_text() == "feature/ABC-1-from-dialog"
    assert page.locator(".gcj-repo").count() == 1
