"""An integration's log in headless Chromium (GET /api/integrations/{id}/log): entries newest
first, filters by level, source and repository, paging, and each entry's detail as readable
words -- host text as text, never raw JSON. Another tenant's entries never show."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from connect_app.models import DevinfoRepositoryState, DevinfoStatus, EventLevel, EventSource, utcnow
from connect_app.services.integration_log import record_event
from tests.support.admin_browser import admin, jira_host, live, open_admin, shot, text
from tests.support.connect import JiraSite
from tests.support.http_server import LoopbackServer
from tests.web.development_data import DevData, tenant_id_of

__all__ = ["admin", "jira_host", "live"]  # fixtures used by name

pytestmark = pytest.mark.browser

IMG = '<img src=x onerror="window.__xss=1">'
PAGE = 50  # static/admin_log.js asks for this many entries at a time


def test_view_log_filters_pages_and_reads_detail(
    page: Any,
    app: Flask,
    live: LoopbackServer,
    jira_host: LoopbackServer,
    admin: JiraSite,
    other_site: JiraSite,
) -> None:
    with app.app_context():
        data = DevData(tenant_id_of(admin))
        integration = data.integration("Team GitHub")
        widgets = data.repository(integration, "widgets")
        gadgets = data.repository(integration, "gadgets")
        tenant_id, integration_id = integration.tenant_id, integration.id
        start = utcnow() - timedelta(hours=3)
        for n in range(PAGE + 5):
            record_event(
                data.session,
                tenant_id=tenant_id,
                integration_id=integration_id,
                level=EventLevel.INFO,
                source=EventSource.WEBHOOK,
                message=f"Webhook delivery {n} indexed",
                repository_id=gadgets.id,
                at=start + timedelta(minutes=n),
            )
        record_event(
            data.session,
            tenant_id=tenant_id,
            integration_id=integration_id,
            level=EventLevel.WARNING,
            source=EventSource.SMART_COMMIT,
            message="No Jira user has the email of the commit's author; #comment was not run.",
            repository_id=widgets.id,
            detail={"commit": "0123456789abcdef", "author_email": "ada@example.com", "issue_keys": ["ABC-1"]},
        )
        record_event(
            data.session,
            tenant_id=tenant_id,
            integration_id=integration_id,
            level=EventLevel.ERROR,
            source=EventSource.DEVINFO,
            message=f"Jira refused 2 of 40 entities {IMG}",
            repository_id=widgets.id,
            detail={
                "accepted": 38,
                "backfill": False,
                "unknown_issue_keys": ["ABC-404", "XYZ-9"],
                "failed": [{"entity": "commit", "id": "abc123", "reason": f"too long {IMG}"}],
            },
        )
        data.session.add_all(
            [
                DevinfoRepositoryState(
                    tenant_id=tenant_id,
                    integration_id=integration_id,
                    repository_id=gadgets.id,
                    status=DevinfoStatus.OK.value,
                    last_result={"sent": 12, "accepted": 12},
                ),
                DevinfoRepositoryState(
                    tenant_id=tenant_id,
                    integration_id=integration_id,
                    repository_id=widgets.id,
                    status=DevinfoStatus.PARTIAL.value,
                    last_error="Jira was unavailable (503); the push resumes on the next run.",
                    unknown_issue_keys=["ABC-404", "XYZ-9"],
                ),
            ]
        )
        other = DevData(tenant_id_of(other_site)).integration("Other tenant")
        record_event(
            data.session,
            tenant_id=other.tenant_id,
            integration_id=other.id,
            level=EventLevel.ERROR,
            source=EventSource.DEVINFO,
            message="Secret entry of another site",
        )
        data.session.commit()

    frame = open_admin(page, live, jira_host, admin)
    row = frame.locator(f"tr[data-integration-id='{integration_id}']")
    row.get_by_role("link", name="View the log of Team GitHub").click()
    log = frame.locator("#gcj-log")
    items = log.locator(".gcj-log-item")
    frame.locator(f"#gcj-log-list[data-loaded='{integration_id}']").wait_for()
    assert items.count() == PAGE
    newest = items.first
    assert newest.get_attribute("data-level") == "error"
    assert f"Jira refused 2 of 40 entities {IMG}" in newest.inner_text()
    assert "Development panel" in text(newest.locator(".gcj-tag")) and "Team GitHub/widgets" in text(newest)

    # where things stand: the Development panel per repository, smart commits
    summary = log.locator("#gcj-log-summary")
    summary.locator(".gcj-item").first.wait_for()
    assert "2 repositories sent to Jira; 1 needs a look" in text(summary)
    assert "Run by Jira from its Development panel, for commits of the last 14 days" in text(summary)
    problem = text(summary.locator(".gcj-item"))
    assert "Team GitHub/widgets" in problem and "Jira was unavailable (503)" in problem and "ABC-404, XYZ-9" in problem

    # the detail, in words
    newest.get_by_text("Details").click()
    detail = newest.locator(".gcj-log-detail")
    words = text(detail)
    assert "Unknown issue keys ABC-404, XYZ-9" in words and "Accepted 38" in words and "Backfill No" in words
    assert f"too long {IMG}" in detail.inner_text() and "Reason" in words
    assert "{" not in text(log) and "[" not in words
    shot(page, "log")

    # older entries page in
    log.get_by_role("button", name="Show older entries").click()
    items.nth(PAGE).wait_for()
    assert items.count() == PAGE + 7
    assert not log.get_by_role("button", name="Show older entries").is_visible()

    # filters: level, source, repository
    log.get_by_label("Level").select_option("warning")
    expect(items).to_have_count(1)
    assert items.first.get_attribute("data-level") == "warning" and "#comment was not run" in text(items.first)
    log.get_by_label("Level").select_option("")
    log.get_by_label("Source").select_option("webhook")
    expect(items).to_have_count(PAGE)
    assert log.locator(".gcj-log-item:not([data-level=info])").count() == 0
    log.get_by_label("Source").select_option("")
    log.get_by_label("Repository").select_option(label="Team GitHub/widgets")
    expect(items).to_have_count(2)
    log.get_by_label("Level").select_option("info")
    log.locator("#gcj-log-status", has_text="No log entries match these filters.").wait_for()
    expect(items).to_have_count(0)

    assert "Secret entry of another site" not in frame.locator("#gcj-admin").inner_text()
    assert page.evaluate("window.__xss") is None
    assert frame.locator("#gcj-admin").evaluate("n => n.querySelectorAll('img').length") == 0
