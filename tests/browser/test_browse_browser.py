"""The repository browser in headless Chromium: served by the real app on 127.0.0.1, opened the
way Jira opens a generalPages module (URL + JWT), with all.js blocked (so it works without AP),
on a real repository indexed from the loopback git server. Covers compare and its JQL link."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask

from connect_app.config import Settings
from connect_app.indexing import sync
from connect_app.models import Trigger
from tests.support.connect import JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.support.http_server import LoopbackServer
from tests.support.indexing_fixtures import IndexingEnv
from tests.support.jira_stub_browse import (  # noqa: F401 - fixtures
    browse_jira_server_fixture,
    browse_jira_stub_fixture,
    browse_site_fixture,
)
from tests.web.development_data import tenant_id_of

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.__xss=1">'


@pytest.fixture
def live(app: Flask) -> Iterator[LoopbackServer]:
    server = LoopbackServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def indexed(app: Flask, settings: Settings, browse_site: JiraSite, git_repo: ServedRepo) -> int:
    git_repo.builder.commit(f"ABC-40 {XSS}", branch="main")
    git_repo.builder.publish()
    with app.app_context():
        env = IndexingEnv(app, settings, tenant_id_of(browse_site))
        repo = env.add_repository(git_repo.url, password=git_repo.server.password, web_url="https://github.com/a/w")
        repo.provider = "github"
        env.session.commit()
        assert sync.run_index(repo.id, Trigger.INITIAL).status == "done"
        return repo.id


def open_browser_page(page: Any, live: LoopbackServer, site: JiraSite) -> list[str]:
    blocked: list[str] = []

    def route(r: Any) -> None:
        host = urlsplit(r.request.url).hostname
        if host == "127.0.0.1":
            r.continue_()
        else:
            blocked.append(host or "")
            r.abort()

    page.route("**/*", route)
    token = site.token("GET", "/browse")
    page.goto(f"{live.url}/browse?jwt={token}")
    page.wait_for_selector("#gcj-browse[data-ready=true]")
    return blocked


def test_compare_two_tags_and_open_the_issues_in_jira(
    page: Any, live: LoopbackServer, browse_site: JiraSite, indexed: int
) -> None:
    blocked = open_browser_page(page, live, browse_site)
    assert any("atl-paas.net" in h for h in blocked)  # all.js was refused: the page works without it

    row = page.locator(f".gcj-repo-row[data-repository-id='{indexed}']")
    assert row.locator(".gcj-last-issue a").inner_text() == "ABC-40"  # the newest linked commit
    assert row.locator(".gcj-last-issue a").get_attribute("href") == f"{browse_site.base_url}/browse/ABC-40"
    row.get_by_role("button").first.click()

    page.locator("#gcj-commits .gcj-commit").first.wait_for()
    first = page.locator("#gcj-commits .gcj-commit").first
    assert first.locator(".gcj-message").inner_text() == f"ABC-40 {XSS}"  # shown as text, never markup
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('#gcj-browse img').length") == 0
    page.get_by_label("Linked to issues").check()
    page.get_by_role("button", name="Show commits").click()
    page.get_by_text("shown from branch main").wait_for()
    assert all(item.locator(".gcj-keys a").count() > 0 for item in page.locator("#gcj-commits .gcj-commit").all())

    page.get_by_role("button", name="Compare", exact=True).click()
    page.get_by_label("From (older)").fill("v0.1")
    page.get_by_label("To (newer)").fill("v1.0")
    page.locator("#gcj-compare-form button[type=submit]").click()
    page.locator("#gcj-compare-result").wait_for()
    summary = page.locator("#gcj-compare-summary").inner_text()
    assert summary.startswith("3 commits in v1.0 that are not in v0.1") and "1 issue linked" in summary
    assert page.locator("#gcj-compare-issues a").all_inner_texts() == ["ABC-12"]
    jira_link = page.get_by_role("link", name="View in Jira")
    expected = f"{browse_site.base_url}/issues/?jql={quote('key in (ABC-12)', safe='')}"
    assert jira_link.get_attribute("href") == expected
    assert jira_link.get_attribute("target") == "_top"
    assert page.locator("#gcj-compare-commits .gcj-commit").count() == 3

    page.get_by_label("To (newer)").fill("--output=/tmp/x")
    page.locator("#gcj-compare-form button[type=submit]").click()
    page.get_by_text("is not a valid branch or tag name").wait_for()
    assert page.locator("#gcj-compare-result").is_hidden()
    page.get_by_label("To (newer)").fill("nope")
    page.locator("#gcj-compare-form button[type=submit]").click()
    page.get_by_text("There is no branch or tag named 'nope'").wait_for()
