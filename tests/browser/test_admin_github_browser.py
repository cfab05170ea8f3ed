"""The Add-integration wizard for GitHub in headless Chromium, against Prism serving GitHub's
own description (``prism_github_loopback``: its repository examples clone from a real
repository on loopback), through to a finished initial index; then its settings (who runs smart
commits), a new token after the host refused the old one, and the log entry that says so."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from connect_app.extensions import db
from connect_app.models import Commit, Integration, IntegrationStatus
from tests.support.admin_browser import admin, jira_host, live, open_admin, run_jobs, shot, text
from tests.support.connect import JiraSite
from tests.support.http_server import LoopbackServer
from tests.support.prism_fixtures import GITHUB_EXAMPLE_REPOSITORY, GitHubOnLoopback

__all__ = ["admin", "jira_host", "live"]  # fixtures used by name

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_github_wizard_with_a_picked_repository_indexes_it(
    page: Any,
    app: Flask,
    live: LoopbackServer,
    jira_host: LoopbackServer,
    admin: JiraSite,
    prism_github_loopback: GitHubOnLoopback,
) -> None:
    github = prism_github_loopback
    frame = open_admin(page, live, jira_host, admin)
    frame.get_by_role("link", name="Add integration").click()
    frame.get_by_role("radio", name=re.compile(r"^GitHub\s*Cloud")).check()
    frame.locator("[data-step=host]").get_by_role("button", name="Next").click()

    connect = frame.locator("[data-step=connect]")
    assert connect.get_by_role("radio", name="OAuth").is_disabled()  # no OAuth client configured here
    connect.get_by_text("Advanced").click()
    connect.get_by_label(re.compile("^API URL")).fill(github.base_url)
    connect.get_by_role("textbox", name="Token").fill("ghp_PrismToken000000000000000000")
    connect.get_by_role("button", name="Check connection").click()
    connect.locator(".gcj-check-result.gcj-ok").wait_for(timeout=30_000)
    assert "Connected as octocat" in text(connect.locator("#gcj-check-result"))
    connect.locator("#gcj-list-result", has_text="1 repository is visible").wait_for()
    shot(page, "github-connect")
    connect.get_by_role("button", name="Next").click()

    repos = frame.locator("[data-step=repositories]")
    repos.get_by_label("Only the repositories I pick").check()
    repos.get_by_role("button", name="Next").click()
    assert "Pick at least one repository" in repos.locator("[data-error-for=repositories]").inner_text()
    repos.get_by_label("Search repositories").fill("hello")
    repos.get_by_label(GITHUB_EXAMPLE_REPOSITORY).check()
    assert "1 repository picked" in repos.locator("#gcj-repo-count").inner_text()
    shot(page, "github-repositories")
    repos.get_by_role("button", name="Next").click()

    settings = frame.locator("[data-step=settings]")
    assert settings.get_by_label("Enforce git host permissions").is_enabled()
    settings.get_by_role("button", name="Next").click()
    finish = frame.locator("[data-step=finish]")
    assert GITHUB_EXAMPLE_REPOSITORY in text(finish.locator("#gcj-summary"))
    finish.get_by_role("button", name="Connect and start indexing").click()
    finish.locator("#gcj-progress-text").wait_for()
    run_jobs(app)
    frame.locator("#gcj-progress[data-state=done]").wait_for(timeout=30_000)
    shot(page, "github-done")
    progress = text(finish.locator("#gcj-progress-text"))
    assert progress.startswith("Initial index finished:"), progress
    assert finish.locator("#gcj-progress").get_attribute("data-status") == "indexed"
    runs = text(finish.locator("#gcj-progress-runs"))
    assert "List repositories" in runs and GITHUB_EXAMPLE_REPOSITORY in runs
    with app.app_context():
        (integration,) = db.session().query(Integration).all()
        assert db.session().query(Commit).count() >= 6  # the loopback repository's history
        integration_id = integration.id

    finish.get_by_role("link", name="View indexing queue").click()
    queue = frame.locator("#gcj-view-queue")
    row = queue.locator("tr.gcj-run-row", has_text=GITHUB_EXAMPLE_REPOSITORY)
    row.wait_for()
    assert row.get_attribute("data-status") == "done"
    row.get_by_role("button", name=re.compile("Details of run")).click()
    details = text(queue.locator("tr.gcj-run-detail:visible"))
    assert "Started" in details and "linked to issues" in details
    assert queue.get_by_label("Integration", exact=True).input_value() == str(integration_id)
    shot(page, "github-queue")

    # settings: who runs smart commits and their age limit, saved and shown again
    frame.get_by_role("link", name="Integrations", exact=True).click()
    frame.locator(f"tr[data-integration-id='{integration_id}']").get_by_role("link", name=re.compile("^Edit")).click()
    form = frame.locator("#gcj-settings-form")
    frame.locator(f"#gcj-settings-form[data-loaded='{integration_id}']").wait_for()
    by_jira = form.get_by_label(re.compile("^Jira, from the commits sent"))
    by_app = form.get_by_label(re.compile("^Git Connect, as the Jira user"))
    assert by_jira.is_checked()  # the default while the Development panel is on
    form.get_by_label("Send to Jira's Development panel").uncheck()
    assert by_jira.is_disabled() and by_app.is_checked()
    assert "Git Connect runs the commands" in text(form.locator("[data-smart-note]"))
    age = form.get_by_label("Run commands only in commits from the last")
    age.fill("0")
    form.get_by_role("button", name="Save settings").click()
    error = form.locator("[data-error-for='settings.smart_commits_max_age_days']")
    assert "between 1 and 365" in text(error) and age.get_attribute("aria-invalid") == "true"
    age.fill("30")
    shot(page, "github-settings-smart-commits")
    form.get_by_role("button", name="Save settings").click()
    frame.locator(".gcj-flag-success", has_text="saved").wait_for()
    frame.locator(f"#gcj-settings-form[data-loaded='{integration_id}']").wait_for()
    assert by_app.is_checked() and age.input_value() == "30"
    with app.app_context():
        saved = db.session().get(Integration, integration_id)
        assert saved is not None
        features = saved.features or {}
        assert features.get("smart_commits_by") == "app" and features.get("smart_commits_max_age_days") == 30
        assert features.get("development_panel") is False
        old_key = saved.credential_key
        saved.status = IntegrationStatus.AUTH_FAILED.value
        saved.status_detail = "GitHub refused the token (401)."
        db.session().commit()

    # credentials: a new token, checked with the host before it replaces the old one
    frame.locator("[data-subnav=credentials]").click()
    frame.locator(f"#gcj-credentials[data-loaded='{integration_id}']").wait_for()
    credentials = frame.locator("#gcj-credentials")
    assert "Connected to GitHub as octocat" in text(credentials.locator("#gcj-credentials-current"))
    credentials.get_by_role("button", name="Replace token").click()
    assert "Enter the new token." in text(credentials.locator("[data-error-for=auth]"))
    token = credentials.get_by_label("New token")
    assert token.get_attribute("type") == "password"
    token.fill("ghp_NewPrismToken00000000000000000")
    credentials.get_by_role("button", name="Replace token").click()
    frame.locator(".gcj-flag-success", has_text="New credentials of").wait_for()
    assert token.input_value() == ""
    with app.app_context():
        replaced = db.session().get(Integration, integration_id)
        assert replaced is not None and replaced.credential_key != old_key
        assert replaced.status == IntegrationStatus.ACTIVE.value
    shot(page, "github-credentials")

    # the log says so, in words
    frame.locator("[data-subnav=log]").click()
    log = frame.locator("#gcj-log")
    entry = log.locator(".gcj-log-item", has_text="Credentials replaced through a new access token")
    entry.wait_for()
    assert "Credentials" in text(entry.locator(".gcj-tag"))
    assert "{" not in text(log)  # no raw JSON
    shot(page, "github-log")
