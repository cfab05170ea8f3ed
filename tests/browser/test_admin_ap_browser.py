"""Manage repositories with AP.js present: a stand-in for Atlassian's all.js (served where the
page asks for it) records what the page asks of it -- the context token for API calls, flags
in Jira's own flag group, navigation to our other Jira page, iframe resizing -- following the
documented AP API (https://developer.atlassian.com/cloud/jira/platform/jsapi/)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask

from tests.support.admin_browser import ADMIN, FRAME, admin, jira_host, live, shot
from tests.support.connect import JiraSite
from tests.support.http_server import LoopbackServer
from tests.web.development_data import DevData, tenant_id_of

__all__ = ["admin", "jira_host", "live"]  # fixtures used by name

pytestmark = pytest.mark.browser

# AP.context.getToken hands out the page's own token (Jira would mint a fresh one), marked so
# the test can tell the page used it.
FAKE_ALL_JS = """
window.__ap = { tokens: 0, flags: [], go: [], resized: 0 };
window.AP = {
  context: { getToken: function (cb) { window.__ap.tokens += 1; cb(document.body.getAttribute("data-page-token")); } },
  flag: {
    create: function (o) {
      window.__ap.flags.push({ title: o.title, type: o.type, close: o.close });
      return { close: function () {} };
    }
  },
  navigator: {
    go: function (target, context) { window.__ap.go.push({ target: target, moduleKey: context.moduleKey }); }
  },
  resize: function () { window.__ap.resized += 1; }
};
"""


def test_inside_jira_the_page_uses_ap(
    page: Any, app: Flask, live: LoopbackServer, jira_host: LoopbackServer, admin: JiraSite
) -> None:
    with app.app_context():
        data = DevData(tenant_id_of(admin))
        integration = data.integration("Team GitHub")
        data.repository(integration, "widgets")
        integration_id = integration.id

    def route(r: Any) -> None:
        url = r.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            r.continue_()
        elif url == "https://connect-cdn.atl-paas.net/all.js":
            r.fulfill(status=200, content_type="application/javascript", body=FAKE_ALL_JS)
        else:
            r.abort()

    page.route("**/*", route)
    path = "/admin/repositories"
    src = f"{live.url}{path}?jwt={admin.token('GET', path, account_id=ADMIN)}"
    page.goto(f"{jira_host.url}/?src={quote(src, safe='')}")
    frame = page.frame_locator(FRAME)
    frame.locator("#gcj-admin[data-ready=true]").wait_for()
    inner = page.frame(url=lambda u: u.startswith(live.url))
    assert inner is not None and inner.evaluate("window.__ap.tokens") >= 1

    row = frame.locator(f"tr[data-integration-id='{integration_id}']")
    row.get_by_role("button", name="Reindex Team GitHub now").click()
    frame.locator(".gcj-flag-success.gcj-visually-hidden").wait_for(state="attached")
    flags = inner.evaluate("window.__ap.flags")
    assert flags and flags[-1]["type"] == "success" and "Team GitHub" in flags[-1]["title"]
    assert frame.locator(".gcj-flag:not(.gcj-visually-hidden)").count() == 0  # Jira shows it, not the iframe

    frame.get_by_role("link", name="Git repositories").click()
    assert inner.evaluate("window.__ap.go") == [{"target": "addonmodule", "moduleKey": "git-repository-browser"}]
    assert inner.url.startswith(live.url)  # the iframe did not navigate away
    assert inner.evaluate("window.__ap.resized") >= 1
    shot(page, "with-ap")
