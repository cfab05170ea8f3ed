# ruff: noqa: F811 - the fixtures imported from admin_harness are parameters here
"""The Manage repositories page (templates/admin*.html, static/admin.js): who may open it,
what it is made of (labelled controls, no inline script, its CSP), the endpoints it adds
(api_admin_ui: Jira projects) and their description in /api/openapi.json."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connect_app.services.integration_settings import Feature
from tests.support.connect import Jira, JiraSite
from tests.support.jira_stub import JiraStub, stub_project
from tests.web.admin_harness import ADMIN, AdminApi, api, error_of, other_api  # noqa: F401

STATIC = Path(__file__).resolve().parents[2] / "static"
PAGES = ["/admin/repositories", "/admin/configure"]


class Controls(HTMLParser):
    """Form controls, labels and scripts of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.label_for: set[str] = set()
        self.scripts: list[dict[str, str]] = []
        self.ids: list[str] = []
        self._label_depth = 0
        self._inline_script = False
        self.inline_script_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "label":
            self._label_depth += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append({**a, "_tag": tag, "_in_label": "yes" if self._label_depth else ""})
        if tag == "script":
            self.scripts.append(a)
            self._inline_script = "src" not in a

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth -= 1
        if tag == "script":
            self._inline_script = False

    def handle_data(self, data: str) -> None:
        if self._inline_script:
            self.inline_script_text += data


def parse(html: str) -> Controls:
    parser = Controls()
    parser.feed(html)
    return parser


@pytest.fixture
def admin_site(installed_site: JiraSite, jira_stub: JiraStub) -> JiraSite:
    jira_stub.admins.add(ADMIN)
    return installed_site


@pytest.mark.parametrize("path", PAGES)
def test_only_jira_admins_open_the_page(client: FlaskClient, jira: Jira, admin_site: JiraSite, path: str) -> None:
    assert client.get(path, headers={"Accept": "text/html"}).status_code == 401
    refused = jira.get_page(admin_site, path, account_id="acct-plain-user")
    assert refused.status_code == 403
    assert "Manage repositories" not in refused.get_data(as_text=True)
    ok = jira.get_page(admin_site, path, account_id=ADMIN)
    assert ok.status_code == 200
    assert f'data-page="{path.rsplit("/", 1)[1]}"' in ok.get_data(as_text=True)


def test_page_headers_and_scripts(jira: Jira, admin_site: JiraSite) -> None:
    response = jira.get_page(admin_site, "/admin/repositories", account_id=ADMIN)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://*.atlassian.net" in csp
    assert "script-src 'self' https://connect-cdn.atl-paas.net" in csp and "object-src 'none'" in csp
    assert response.headers["Cache-Control"] == "no-store"
    page = parse(response.get_data(as_text=True))
    sources = [s.get("src", "") for s in page.scripts]
    assert sources == [
        "https://connect-cdn.atl-paas.net/all.js",
        "/static/app.js",
        "/static/admin.js",
        "/static/admin_log.js",
        "/static/admin_credentials.js",
    ]
    assert page.inline_script_text.strip() == ""  # no inline script: the CSP would refuse it anyway
    all_js = page.scripts[0]
    assert "async" in all_js  # optional: the page works when the CDN is unreachable


def test_every_control_has_a_label_and_ids_are_unique(jira: Jira, admin_site: JiraSite) -> None:
    html = jira.get_page(admin_site, "/admin/repositories", account_id=ADMIN).get_data(as_text=True)
    page = parse(html)
    assert page.controls, "the page has form controls"
    unlabelled = [
        c
        for c in page.controls
        if not (c.get("id") in page.label_for or c.get("aria-label") or c.get("aria-labelledby") or c["_in_label"])
    ]
    assert unlabelled == []
    duplicates = {i for i in page.ids if page.ids.count(i) > 1}
    assert duplicates == set()


def test_the_page_holds_every_view_and_setting(jira: Jira, admin_site: JiraSite) -> None:
    html = jira.get_page(admin_site, "/admin/repositories", account_id=ADMIN).get_data(as_text=True)
    for view in ("gcj-view-integrations", "gcj-view-wizard", "gcj-view-integration", "gcj-view-queue"):
        assert f'id="{view}"' in html
    for step in ("host", "connect", "repositories", "settings", "finish"):
        assert f'data-step="{step}"' in html
    for feature in Feature:  # the wizard and the settings form both switch every feature
        assert html.count(f'data-feature="{feature.value}"') == 2
    assert 'value="${issuekey}-${summary}"' in html
    assert (
        "<code>${issuekey}</code>, <code>${summary}</code>, <code>${issuetype}</code>, <code>${projectkey}</code>"
        in html
    )
    assert 'min="5" max="10080"' in html
    for column in ("Finished", "Integration", "Repository", "Trigger", "Delay", "Duration", "Status"):
        assert f'<th scope="col">{column}</th>' in html or f'<th scope="col" class="gcj-num">{column}</th>' in html
    assert 'id="gcj-clear-queued"' in html and 'id="gcj-confirm"' in html


def test_admin_js_never_builds_markup_from_strings() -> None:
    text = (STATIC / "admin.js").read_text()
    source = "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert forbidden not in source, forbidden
    # links to hosts only when http(s)
    assert "function safeHref" in source and re.search(r"/\^https\?:", source)


def test_admin_css_section_is_marked() -> None:
    css = (STATIC / "app.css").read_text()
    start, end = css.index("/* ---- admin: Manage repositories"), css.index("/* ---- end admin")
    assert start < end


# --- Jira projects for the picker ---------------------------------------------------------


def test_jira_projects_are_read_from_jira_once_then_served(
    api: AdminApi, admin_site: JiraSite, jira_stub: JiraStub
) -> None:
    jira_stub.projects_by_client[admin_site.client_key] = [
        stub_project(10000, "ABC", "Alpha <b>Beta</b>"),
        stub_project(10001, "OPS", "Operations"),
    ]
    try:
        first = api("GET", "/api/jira-projects")
        assert first.status_code == 200
        body = first.get_json()
        assert [(p["key"], p["name"]) for p in body["projects"]] == [
            ("ABC", "Alpha <b>Beta</b>"),
            ("OPS", "Operations"),
        ]
        assert body["error"] is None and body["refreshed_at"]
        searches = len(jira_stub.calls_to("/rest/api/3/project/search"))
        assert api("GET", "/api/jira-projects").get_json()["projects"] == body["projects"]
        assert len(jira_stub.calls_to("/rest/api/3/project/search")) == searches  # fresh: not asked again
    finally:
        jira_stub.projects_by_client.pop(admin_site.client_key, None)


def test_jira_projects_failure_is_said_in_words(api: AdminApi, admin_site: JiraSite, jira_stub: JiraStub) -> None:
    jira_stub.projects_by_client[admin_site.client_key] = [stub_project(1, "ABC")]
    jira_stub.project_search_failures[0] = 500
    try:
        body = api("GET", "/api/jira-projects").get_json()
        assert body["projects"] == [] and "type project keys instead" in body["error"]
    finally:
        jira_stub.project_search_failures.clear()
        jira_stub.projects_by_client.pop(admin_site.client_key, None)


def test_jira_projects_are_per_tenant_and_admin_only(
    api: AdminApi, other_api: AdminApi, admin_site: JiraSite, other_site: JiraSite, jira_stub: JiraStub
) -> None:
    jira_stub.projects_by_client[admin_site.client_key] = [stub_project(1, "MINE")]
    jira_stub.projects_by_client[other_site.client_key] = [stub_project(2, "THEIRS")]
    try:
        assert [p["key"] for p in api("GET", "/api/jira-projects").get_json()["projects"]] == ["MINE"]
        assert [p["key"] for p in other_api("GET", "/api/jira-projects").get_json()["projects"]] == ["THEIRS"]
        refused = api("GET", "/api/jira-projects", account="acct-plain-user")
        assert refused.status_code == 403 and error_of(refused)["code"] == "admin_required"
    finally:
        jira_stub.projects_by_client.pop(admin_site.client_key, None)
        jira_stub.projects_by_client.pop(other_site.client_key, None)


# --- OpenAPI ------------------------------------------------------------------------------


def test_the_page_endpoints_are_in_the_openapi_document(app: Flask, client: FlaskClient) -> None:
    doc: dict[str, Any] = client.get("/api/openapi.json").get_json()
    routes = [r for r in app.url_map.iter_rules() if r.endpoint.split(".")[0] == "api_admin_ui"]
    assert len(routes) >= 7
    for rule in routes:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        documented = {m.upper() for m in doc["paths"][path] if m != "parameters"}
        assert rule.methods is not None
        assert rule.methods - {"HEAD", "OPTIONS"} <= documented, path
    assert "OAuthFlow" in doc["components"]["schemas"]
