""" "My git tokens" (the user settings page) in headless Chromium, served by the real app on
127.0.0.1 and opened the way Jira opens it (module URL + JWT). Atlassian's all.js is refused
(only 127.0.0.1 is reachable), so this also proves the page works without AP.

Hosts: a real git server over HTTP with basic auth (plain git), and a GitHub stub answering
GitHub's documented 401 for tokens it does not know (tests/web/fake_github.py).
Screenshots: test-artifacts/screenshots/<test name>.png (the ``page`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from connect_app.extensions import db
from connect_app.hosts.base import ProviderId
from connect_app.models import Integration
from tests.support.connect import JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.support.http_server import LoopbackServer
from tests.web.development_data import tenant_id_of
from tests.web.fake_github import GOOD_TOKEN, FakeGitHub, fake_github
from tests.web.user_token_support import github_integration, token_rows

__all__ = ["fake_github"]  # fixtures used by name

pytestmark = pytest.mark.browser

ACCOUNT = "acct-user-1"


@pytest.fixture
def live(app: Flask) -> Iterator[LoopbackServer]:
    server = LoopbackServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def ctx(app: Flask) -> Iterator[Any]:
    with app.app_context():
        yield db.session()


def open_settings(page: Any, live: LoopbackServer, site: JiraSite, query: str = "") -> list[str]:
    """Open the page as Jira would; every request not to 127.0.0.1 is refused (and listed)."""
    blocked: list[str] = []

    def route(r: Any) -> None:
        host = urlsplit(r.request.url).hostname
        if host == "127.0.0.1":
            r.continue_()
        else:
            blocked.append(host or "")
            r.abort()

    page.route("**/*", route)
    path = "/user/settings" + query
    token = site.token("GET", path, account_id=ACCOUNT)
    page.goto(f"{live.url}{path}{'&' if '?' in path else '?'}jwt={token}")
    page.wait_for_selector("#gcj-tokens[data-ready=true]")
    return blocked


def card(page: Any, integration: Integration) -> Any:
    return page.locator(f"#gcj-token-{integration.id}")


def test_add_test_and_remove_a_github_token(
    page: Any,
    live: LoopbackServer,
    installed_site: JiraSite,
    ctx: Any,
    fake_github: FakeGitHub,
) -> None:
    tenant = tenant_id_of(installed_site)
    acme = github_integration(ctx, tenant, fake_github.url, name="Acme GitHub", require_user_pat=True)
    github_integration(ctx, tenant, fake_github.url, name="Other GitHub")

    blocked = open_settings(page, live, installed_site)
    assert any("atl-paas.net" in h for h in blocked)
    assert page.get_by_role("heading", name="My git tokens").is_visible()
    mine = card(page, acme)
    assert mine.get_by_text("Required by your administrator").is_visible()
    assert card(page, acme).locator("[data-status]").inner_text() == "No token added yet."
    assert page.locator(".gcj-token-card").count() == 2
    assert page.locator(".gcj-token-card").first.get_attribute("id") == f"gcj-token-{acme.id}"  # required first

    # a refused token: the host's reason, nothing saved
    field = mine.get_by_label("Personal access token")
    assert field.get_attribute("type") == "password"
    field.fill("ghp_NotAValidToken000000")
    mine.get_by_role("button", name="Save token").click()
    mine.locator("[data-error]:not([hidden])").wait_for()
    assert "did not accept this token" in mine.locator("[data-error]").inner_text()
    assert field.get_attribute("aria-invalid") == "true"
    assert token_rows(ctx, tenant) == []

    # a good one: saved, shown as its last four characters and account, the field emptied
    field.fill(GOOD_TOKEN)
    mine.get_by_role("button", name="Save token").click()
    mine = card(page, acme)
    mine.get_by_role("button", name="Replace token").wait_for()
    status = mine.locator("[data-status]").inner_text()
    assert status.startswith(f"Token ending in …{GOOD_TOKEN[-4:]} for octo-admin")
    assert mine.locator("[data-result]").inner_text() == "Saved. It belongs to octo-admin."
    assert mine.locator("[data-token-input]").input_value() == ""
    assert GOOD_TOKEN[4:-4] not in page.content()

    # test it, then remove it
    mine.get_by_role("button", name="Test the token for Acme GitHub").click()
    mine = card(page, acme)
    mine.locator("[data-result].gcj-ok").wait_for()
    assert mine.locator("[data-result]").inner_text() == "Acme GitHub (GitHub) accepted the token as octo-admin."
    mine.get_by_role("button", name="Remove the token for Acme GitHub").click()
    mine = card(page, acme)
    mine.get_by_role("button", name="Save token").wait_for()
    assert mine.locator("[data-status]").inner_text() == "No token added yet."
    assert token_rows(ctx, tenant) == []


def test_a_link_for_one_integration_focuses_it_and_plain_git_takes_a_user_name(
    page: Any, live: LoopbackServer, installed_site: JiraSite, ctx: Any, git_repo: ServedRepo
) -> None:
    tenant = tenant_id_of(installed_site)
    github_integration(ctx, tenant, None, name="Acme GitHub", require_user_pat=True)
    plain = github_integration(ctx, tenant, git_repo.url, name="Plain repo", provider=ProviderId.GIT)

    open_settings(page, live, installed_site, f"?integration={plain.id}")
    first = page.locator(".gcj-token-card").first
    assert first.get_attribute("id") == f"gcj-token-{plain.id}"  # the asked-for one first, and focused
    assert page.evaluate("document.activeElement.id") == f"gcj-token-input-{plain.id}"
    assert page.locator("#gcj-focus-missing").is_hidden()

    mine = card(page, plain)
    mine.get_by_label("User name (optional)").fill(git_repo.server.username or "")
    mine.get_by_label("Personal access token or app password").fill(git_repo.server.password or "")
    mine.get_by_role("button", name="Save token").click()
    mine = card(page, plain)
    mine.get_by_role("button", name="Replace token").wait_for()
    assert f"for {git_repo.server.username}" in mine.locator("[data-status]").inner_text()
    (row,) = token_rows(ctx, tenant)
    assert row.account_id == ACCOUNT and row.integration_id == plain.id


def test_a_link_to_an_unknown_integration_says_so(
    page: Any, live: LoopbackServer, installed_site: JiraSite, ctx: Any
) -> None:
    open_settings(page, live, installed_site, "?integration=424242")
    assert page.locator("#gcj-focus-missing").is_visible()
    assert page.locator("#gcj-tokens-empty").is_visible()
    assert page.get_by_text("No integration here uses personal tokens.").is_visible()
