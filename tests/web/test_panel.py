"""The issue panel page: auth, the embedded first page (safely escaped), notices and headers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from connect_app.models import RepositoryStatus
from tests.support.connect import Jira, JiraSite
from tests.web.development_data import DevData, tenant_id_of

XSS = '</script><script>alert(1)</script><img src=x onerror="alert(2)">'


def panel(jira: Jira, site: JiraSite, key: str = "ABC-1") -> TestResponse:
    return jira.get_page(site, f"/panel/issue?issueKey={key}&projectKey=ABC")


def embedded(response: TestResponse) -> dict[str, Any]:
    html = response.get_data(as_text=True)
    match = re.search(r'<script type="application/json" id="gcj-initial">(.*?)</script>', html, re.S)
    assert match, html
    data: dict[str, Any] = json.loads(match.group(1))
    return data


@pytest.fixture
def data(app: Flask, installed_site: JiraSite) -> Iterator[DevData]:
    with app.app_context():
        yield DevData(tenant_id_of(installed_site))


def test_panel_needs_a_page_token(client: Any, jira: Jira, installed_site: JiraSite) -> None:
    assert client.get("/panel/issue?issueKey=ABC-1").status_code == 401
    context_token = installed_site.token("GET", "/panel/issue?issueKey=ABC-1", context=True)
    assert client.get(f"/panel/issue?issueKey=ABC-1&jwt={context_token}").status_code == 401


@pytest.mark.parametrize("key", ["", "ABC", "ABC-0", "<b>-1"])
def test_panel_refuses_bad_keys(jira: Jira, installed_site: JiraSite, key: str) -> None:
    response = panel(jira, installed_site, key)
    assert response.status_code == 400
    assert "<b>" not in response.get_data(as_text=True)


def test_empty_panel_explains_how_to_link(jira: Jira, installed_site: JiraSite) -> None:
    response = panel(jira, installed_site, "abc-9")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "No commits, branches or pull requests mention ABC-9 yet." in html
    assert "<code>feature/ABC-9-short-description</code>" in html
    assert "0 commits" in html and "0 branches" in html and "0 pull requests" in html
    assert embedded(response)["counts"] == {"commits": 0, "branches": 0, "pull_requests": 0}
    assert 'data-api-url="/api/issues/ABC-9/development"' in html
    assert "panel.js" in html


def test_panel_headers(jira: Jira, installed_site: JiraSite) -> None:
    response = panel(jira, installed_site)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in csp and "http://127.0.0.1:*" in csp
    assert "script-src 'self' https://connect-cdn.atl-paas.net" in csp and "object-src 'none'" in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_panel_embeds_the_first_page(jira: Jira, installed_site: JiraSite, data: DevData) -> None:
    repo = data.repository(data.integration())
    for i in range(55):
        data.commit(repo, f"ABC-1 commit {i}", flush=False)
    data.session.commit()
    data.branch(repo, "feature/ABC-1-x")
    response = panel(jira, installed_site)
    assert response.status_code == 200
    page = embedded(response)
    assert len(page["commits"]) == 50 and page["next_cursor"]
    assert page["counts"] == {"commits": 55, "branches": 1, "pull_requests": 0}
    html = response.get_data(as_text=True)
    assert "55 commits" in html and "1 branch<" in html


def test_git_data_cannot_break_out_of_the_json_island(jira: Jira, installed_site: JiraSite, data: DevData) -> None:
    repo = data.repository(data.integration(XSS), XSS)
    data.commit(repo, f"ABC-1 {XSS}")
    data.pull_request(repo, f"ABC-1 {XSS}")
    response = panel(jira, installed_site)
    html = response.get_data(as_text=True)
    assert "<img" not in html and "alert(1)</script>" not in html
    assert html.count("</script>") == html.count("<script")  # only the page's own script elements close
    page = embedded(response)
    assert page["commits"][0]["message"] == f"ABC-1 {XSS}"
    assert page["pull_requests"][0]["title"] == f"ABC-1 {XSS}"


def test_panel_notices(jira: Jira, installed_site: JiraSite, data: DevData) -> None:
    data.repository(data.integration("acme"), "first", status=RepositoryStatus.QUEUED.value, indexed=False)
    locked = data.integration("Locked GitHub", enforce_permissions=True)
    response = panel(jira, installed_site)
    page = embedded(response)
    assert [r["name"] for r in page["indexing"]] == ["acme/first"]
    assert page["needs_token"] == [locked.id]
    html = response.get_data(as_text=True)
    tokens = f"{installed_site.base_url}/plugins/servlet/ac/git-connect-for-jira/my-git-tokens"
    assert f'href="{tokens}"' in html
