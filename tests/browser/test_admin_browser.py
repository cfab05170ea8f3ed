"""Manage repositories in headless Chromium (setup: tests/support/admin_browser.py): the
plain Git wizard to a finished initial index, the queue viewer, settings and repositories;
host data rendered as text; confirmations; OAuth sign-in in a popup. GitHub through Prism:
test_admin_github_browser.py; the log and credentials: test_admin_log_browser.py.

Jobs run with an RQ ``SimpleWorker`` in burst mode between steps, as the end-to-end API test
does. Screenshots: test-artifacts/screenshots/<name>.png (the ``page`` fixture, plus named
ones per step)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from connect_app import create_app
from connect_app.config import Settings
from connect_app.extensions import db
from connect_app.hosts.base import ProviderId
from connect_app.models import IndexRun, Integration, IntegrationEvent, RepositoryStatus, RunStatus, Trigger, utcnow
from connect_app.oauth_settings import EXTENSION_KEY, OAuthClient, OAuthSettings
from tests.support.admin_browser import admin, jira_host, live, open_admin, run_jobs, shot, text
from tests.support.connect import JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.support.http_server import LoopbackServer
from tests.support.stub_host import loopback_only
from tests.web.development_data import DevData, tenant_id_of
from tests.web.test_oauth import ACCESS, CLIENT_ID, CLIENT_SECRET, OAuthHost

__all__ = ["admin", "jira_host", "live"]  # fixtures used by name

pytestmark = pytest.mark.browser


def test_plain_git_wizard_index_queue_and_settings(
    page: Any,
    app: Flask,
    live: LoopbackServer,
    jira_host: LoopbackServer,
    admin: JiraSite,
    git_repo: ServedRepo,
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    frame = open_admin(page, live, jira_host, admin)
    assert frame.get_by_text("No git host is connected yet.").is_visible()

    # 1. host
    frame.get_by_role("link", name="Add integration").click()
    frame.get_by_role("radio", name=re.compile(r"^Git \(any server\)")).check()
    frame.locator("[data-step=host]").get_by_role("button", name="Next").click()

    # 2. connect: a wrong password is explained, the right one is accepted
    connect = frame.locator("[data-step=connect]")
    connect.get_by_label("Repository URL").fill(git_repo.url)
    connect.get_by_role("radio", name="User name and password").check()
    connect.get_by_label("User name", exact=True).fill(git_repo.server.username)
    connect.get_by_label("Password", exact=True).fill("not-the-password")
    connect.get_by_role("button", name="Check connection").click()
    error = connect.locator("[data-error-for=auth]")
    error.wait_for()
    assert error.inner_text().strip() and "{" not in error.inner_text()  # words, not JSON
    assert connect.get_by_role("button", name="Next").is_disabled()
    password = connect.get_by_label("Password", exact=True)
    password.fill(git_repo.server.password)
    password.press("Enter")  # Enter checks the connection on this step, as the button does
    connect.locator(".gcj-check-result.gcj-ok").wait_for()
    assert text(connect.locator("#gcj-check-result")).startswith("Connected")
    connect.get_by_role("button", name="Next").click()

    # 3. repositories: one repository for plain git
    repos = frame.locator("[data-step=repositories]")
    assert git_repo.name in repos.locator("#gcj-single-repo").inner_text()
    repos.get_by_role("button", name="Next").click()

    # 4. settings, driven by the keyboard where it matters
    settings = frame.locator("[data-step=settings]")
    settings.get_by_label("Display name").fill("Team repository")
    settings.get_by_label("Only these projects").check()
    project = settings.get_by_label("Add a project")
    project.fill("abc")
    project.press("Enter")
    project.fill("not a key")
    settings.get_by_role("button", name="Add project").click()
    assert "is not a Jira project key" in settings.locator("[data-project-status]").inner_text()
    assert settings.locator("[data-project-chips] li").all_inner_texts()[0].startswith("ABC")
    settings.get_by_label("Every").check()
    settings.get_by_label("Reindex interval in minutes").fill("30")
    shot(page, "wizard-settings")
    settings.get_by_role("button", name="Next").click()

    # 5. finish: summary, then the initial index
    finish = frame.locator("[data-step=finish]")
    summary = text(finish.locator("#gcj-summary"))
    assert "Team repository" in summary and "ABC" in summary and "Every 30 minutes" in summary
    finish.get_by_role("button", name="Connect and start indexing").click()
    progress = finish.locator("#gcj-progress")
    progress.locator("#gcj-progress-text").wait_for()
    assert progress.is_visible()
    run_jobs(app)
    frame.locator("#gcj-progress[data-state=done]").wait_for(timeout=20_000)
    assert "Initial index finished" in text(progress.locator("#gcj-progress-text"))
    assert progress.get_attribute("data-status") == "indexed"
    shot(page, "wizard-done")

    with app.app_context():
        (integration,) = db.session().query(Integration).all()
        assert integration.project_keys == ["ABC"] and integration.reindex_interval_minutes == 30
        integration_id = integration.id

    # the queue viewer: both runs, details, the chart
    finish.get_by_role("link", name="View indexing queue").click()
    queue = frame.locator("#gcj-view-queue")
    rows = queue.locator("tr.gcj-run-row")
    rows.first.wait_for()
    assert rows.count() == 2
    assert queue.get_by_label("Integration", exact=True).input_value() == str(integration_id)
    index_row = queue.locator("tr.gcj-run-row", has_text=git_repo.name)
    assert index_row.get_attribute("data-status") == "done" and "Initial" in text(index_row)
    index_row.get_by_role("button", name=re.compile("Details of run")).click()
    details = queue.locator("tr.gcj-run-detail:visible")
    assert "Commits" in text(details) and "linked to issues" in text(details)
    chart = queue.locator("#gcj-chart svg")
    assert chart.get_attribute("role") == "img" and chart.locator("circle").count() == 1
    assert "Team repository: 1 run" in text(queue.locator("#gcj-chart-legend"))
    queue.get_by_label("Status", exact=True).select_option("failed")
    queue.locator("#gcj-queue-status", has_text="No runs match").wait_for()
    queue.get_by_label("Status", exact=True).select_option("")
    rows.first.wait_for()
    shot(page, "queue")

    # the list, then edit settings
    frame.get_by_role("link", name="Integrations", exact=True).click()
    row = frame.locator(f"tr[data-integration-id='{integration_id}']")
    row.wait_for()
    assert row.locator(".gcj-lozenge").get_attribute("data-status") == "indexed" and "Team repository" in text(row)
    shot(page, "integrations")
    row.get_by_role("link", name="Edit Team repository").click()
    form = frame.locator("#gcj-settings-form")
    frame.locator(f"#gcj-settings-form[data-loaded='{integration_id}']").wait_for()
    name = form.get_by_label("Display name")
    assert name.input_value() == "Team repository"
    assert form.get_by_label("Reindex interval in minutes").input_value() == "30"
    assert "Recommended: every" in text(form.locator("[data-interval-hint]"))
    name.fill("Renamed repository")
    form.get_by_label(re.compile("^Smart commits")).uncheck()
    form.get_by_label("All projects").check()
    form.get_by_role("button", name="Save settings").click()
    frame.locator(".gcj-flag-success", has_text="Settings of Renamed repository saved.").wait_for()
    with app.app_context():
        saved = db.session().get(Integration, integration_id)
        assert saved is not None and saved.display_name == "Renamed repository"
        assert saved.project_keys == [] and (saved.features or {}).get("smart_commits") is False

    # repositories view: status, counters, per-repository projects
    frame.locator("[data-subnav=repositories]").click()
    repo_row = frame.locator("#gcj-repositories tbody tr").first
    repo_row.wait_for()
    assert repo_row.locator(".gcj-lozenge").get_attribute("data-status") == "ok"
    assert "indexed" in text(repo_row).lower()
    keys = repo_row.get_by_label(re.compile("^Jira project keys for"))
    keys.fill("ops, abc")
    keys.press("Enter")
    frame.locator(".gcj-flag-success", has_text="Jira projects of").wait_for()
    assert "OPS, ABC" in text(frame.locator(".gcj-flag-success", has_text="Jira projects of"))
    shot(page, "repositories")
    assert dialogs == []


IMG = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'
SCRIPT = "<script>window.__xss=(window.__xss||0)+100</script>"


def test_host_data_is_text_live_runs_and_confirmations(
    page: Any, app: Flask, live: LoopbackServer, jira_host: LoopbackServer, admin: JiraSite
) -> None:
    """Names, errors and repository names from hosts render as text; running jobs show live;
    Clear queued runs and Disconnect ask first (Escape cancels)."""
    with app.app_context():
        data = DevData(tenant_id_of(admin))
        evil = data.integration(f"evil {IMG}")
        repo = data.repository(evil, f"repo{SCRIPT}", status=RepositoryStatus.FAILED.value)
        repo.last_error = f"host said {IMG}"
        now = utcnow()
        data.session.add_all(
            [
                IndexRun(
                    tenant_id=evil.tenant_id,
                    integration_id=evil.id,
                    repository_id=repo.id,
                    trigger=Trigger.WEBHOOK.value,
                    status=RunStatus.RUNNING.value,
                    queued_at=now - timedelta(seconds=30),
                    started_at=now - timedelta(seconds=20),
                    commits_seen=1234,
                ),
                IndexRun(
                    tenant_id=evil.tenant_id,
                    integration_id=evil.id,
                    repository_id=repo.id,
                    trigger=Trigger.MANUAL.value,
                    status=RunStatus.QUEUED.value,
                    queued_at=now - timedelta(seconds=5),
                ),
                IndexRun(
                    tenant_id=evil.tenant_id,
                    integration_id=evil.id,
                    repository_id=repo.id,
                    trigger=Trigger.SCHEDULED.value,
                    status=RunStatus.FAILED.value,
                    queued_at=now - timedelta(hours=2),
                    started_at=now - timedelta(hours=2),
                    finished_at=now - timedelta(hours=2) + timedelta(seconds=42),
                    error=f"boom {SCRIPT}{IMG}",
                ),
            ]
        )
        data.session.commit()
        integration_id = evil.id

    frame = open_admin(page, live, jira_host, admin)
    row = frame.locator(f"tr[data-integration-id='{integration_id}']")
    assert f"evil {IMG}" in row.inner_text()
    assert row.locator(".gcj-lozenge").get_attribute("data-status") == "error"
    assert "failed their last index" in text(row)

    # the queue: a running job live, the failed run's error as text, the chart
    frame.get_by_role("link", name="Indexing queue").click()
    running = frame.locator("#gcj-running")
    running.wait_for()
    assert f"repo{SCRIPT}" in running.inner_text() and "1,234 commits read" in text(running)
    assert "1 run waits in the queue" in text(running)
    failed = frame.locator("tr.gcj-run-row[data-status=failed]")
    failed.get_by_role("button", name=re.compile("Details of run")).click()
    assert f"boom {SCRIPT}{IMG}" in frame.locator("tr.gcj-run-detail:visible pre").inner_text()
    frame.locator("#gcj-chart circle").first.wait_for()

    # Clear queued runs: Escape cancels, confirming clears
    frame.get_by_role("button", name="Clear queued runs").click()
    dialog = frame.locator("#gcj-confirm")
    dialog.wait_for()
    assert dialog.get_by_role("button", name="Cancel").evaluate("b => b === document.activeElement")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert frame.get_by_role("button", name="Clear queued runs").evaluate("b => b === document.activeElement")
    assert frame.locator("tr.gcj-run-row[data-status=queued]").count() == 1
    frame.get_by_role("button", name="Clear queued runs").click()
    dialog.get_by_role("button", name="Clear queued runs").click()
    frame.locator(".gcj-flag-success", has_text="1 queued run cleared").wait_for()
    frame.locator("tr.gcj-run-row[data-status=queued]").wait_for(state="detached")

    # the repositories view shows the host's error as text
    frame.get_by_role("link", name="Integrations", exact=True).click()
    row.get_by_role("link", name=f"Edit evil {IMG}").click()
    frame.locator("[data-subnav=repositories]").click()
    repo_row = frame.locator("#gcj-repositories tbody tr").first
    repo_row.wait_for()
    assert f"host said {IMG}" in repo_row.inner_text() and f"repo{SCRIPT}" in repo_row.inner_text()

    # nothing from the data became an element
    assert page.evaluate("window.__xss") is None
    frame_el = frame.locator("#gcj-admin")
    assert frame_el.evaluate("n => n.querySelectorAll('img, script').length") == 0
    assert frame_el.evaluate("n => n.querySelectorAll('svg').length") <= 1  # the chart, built by us

    # Disconnect asks first
    frame.get_by_role("link", name="Integrations", exact=True).click()
    row.get_by_role("button", name=f"Disconnect evil {IMG}").click()
    assert "are removed from Jira's issue panel" in text(dialog)
    shot(page, "disconnect-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    assert row.is_visible()
    row.get_by_role("button", name=f"Disconnect evil {IMG}").click()
    dialog.get_by_role("button", name="Disconnect").click()
    frame.get_by_text("No git host is connected yet.").wait_for()
    with app.app_context():
        assert db.session().query(Integration).count() == 0


@pytest.fixture
def oauth_live(app: Flask, settings: Settings) -> Iterator[tuple[Flask, LoopbackServer]]:
    """A second app on the same database and Redis whose BASE_URL is its own loopback address,
    so the host's redirect to ``<BASE_URL>/oauth/callback`` comes back to it; GitHub OAuth set up."""
    holder: dict[str, Flask] = {}
    server = LoopbackServer(lambda environ, start_response: holder["app"](environ, start_response)).start()
    second = create_app(settings.with_overrides(base_url=server.url))
    second.extensions[EXTENSION_KEY] = OAuthSettings({ProviderId.GITHUB: OAuthClient(CLIENT_ID, CLIENT_SECRET)})
    holder["app"] = second
    yield second, server
    server.stop()
    with second.app_context():
        db.session.remove()
        db.engine.dispose()


def test_oauth_sign_in_in_a_popup(
    page: Any,
    app: Flask,
    oauth_live: tuple[Flask, LoopbackServer],
    jira_host: LoopbackServer,
    admin: JiraSite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sign in with GitHub: the popup goes to the host (a stub that approves at once), comes
    back to the callback, closes itself; the wizard checks the tokens and creates the integration
    without the token ever reaching the page."""
    loopback_only(monkeypatch)
    host = OAuthHost()
    try:
        second, live = oauth_live
        frame = open_admin(page, live, jira_host, admin)
        frame.get_by_role("link", name="Add integration").click()
        frame.get_by_role("radio", name=re.compile(r"^GitHub\s*Cloud")).check()
        frame.locator("[data-step=host]").get_by_role("button", name="Next").click()
        connect = frame.locator("[data-step=connect]")
        connect.get_by_text("Advanced").click()
        connect.get_by_label(re.compile("^API URL")).fill(host.url)
        connect.get_by_role("radio", name="OAuth").check()
        with page.expect_popup() as popup_info:
            connect.get_by_role("button", name="Sign in with GitHub").click()
        popup = popup_info.value
        popup.wait_for_event("close", timeout=15_000)  # the done page closes itself
        connect.locator(".gcj-check-result.gcj-ok").wait_for()
        assert "Connected as octo-oauth" in text(connect.locator("#gcj-check-result"))
        assert "Signed in to GitHub" in text(connect.locator("#gcj-oauth-status"))
        connect.locator("#gcj-list-result", has_text="1 repository is visible").wait_for()
        shot(page, "oauth-connected")
        connect.get_by_role("button", name="Next").click()
        frame.locator("[data-step=repositories]").get_by_role("button", name="Next").click()
        frame.locator("[data-step=settings]").get_by_role("button", name="Next").click()
        finish = frame.locator("[data-step=finish]")
        assert "OAuth" in text(finish.locator("#gcj-summary"))
        finish.get_by_role("button", name="Connect and start indexing").click()
        finish.locator("#gcj-progress-text").wait_for()
        with second.app_context():
            (integration,) = db.session().query(Integration).all()
            assert integration.auth_type == "oauth" and integration.account_name == "octo-oauth"
        page_text = page.content() + frame.locator("html").inner_html()
        assert ACCESS not in page_text and CLIENT_SECRET not in page_text
        (exchange,) = host.token_requests()
        assert exchange["redirect_uri"] == f"{live.url}/oauth/callback"

        # later: sign in again from the integration's credentials (a new OAuth flow, same popup)
        finish.get_by_role("link", name="Open integration").click()
        frame.locator("[data-subnav=credentials]").click()
        credentials = frame.locator("#gcj-credentials")
        frame.locator(f"#gcj-credentials[data-loaded='{integration.id}']").wait_for()
        assert "with an OAuth sign-in" in text(credentials.locator("#gcj-credentials-current"))
        assert not credentials.get_by_role("button", name="Replace token").is_visible()
        with page.expect_popup() as again:
            credentials.get_by_role("button", name="Sign in again").click()
        again.value.wait_for_event("close", timeout=15_000)
        frame.locator(".gcj-flag-success", has_text="New credentials of").wait_for()
        shot(page, "oauth-signed-in-again")
        assert len(host.token_requests()) == 2
        with second.app_context():
            events = db.session().query(IntegrationEvent).filter_by(integration_id=integration.id).all()
            assert any("OAuth sign-in" in e.message for e in events)
        assert ACCESS not in page.content() + frame.locator("html").inner_html()
    finally:
        host.stub.close()
