"""The create-branch / create-pull-request dialog pages and the links the issue panel signs for them."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from tests.support.connect import Jira, JiraSite

XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def attribute(page: str, element_id: str, name: str) -> str:
    match = re.search(rf'<[^>]*\bid="{element_id}"[^>]*>', page, re.S)
    assert match, element_id
    value = re.search(rf'\b{name}="([^"]*)"', match.group(0))
    assert value, (element_id, name)
    return html.unescape(value.group(1))


def test_jiras_create_branch_action_opens_with_a_context_token(client: FlaskClient, installed_site: JiraSite) -> None:
    # Jira substitutes {jwt} into the templateUrl: a context-qsh token, not one for this URL.
    token = installed_site.token("GET", "/", context=True)
    response = client.get(f"/actions/create-branch?issueKey=abc-12&issueSummary=Fix+login&jwt={token}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<h1 id="gcj-action-title">Create branch</h1>' in page
    assert attribute(page, "gcj-action", "data-issue-key") == "ABC-12"
    assert attribute(page, "gcj-action", "data-action") == "branch"
    assert attribute(page, "gcj-action", "data-issue-summary") == "Fix login"
    assert attribute(page, "gcj-action", "data-issue-url") == f"{installed_site.base_url}/browse/ABC-12"
    assert 'for="gcj-name"' in page and 'for="gcj-source"' in page and 'for="gcj-repository"' in page
    assert "actions.js" in page


def test_create_pull_request_page(jira: Jira, installed_site: JiraSite) -> None:
    response = jira.get_page(installed_site, "/actions/create-pull-request?issueKey=ABC-3&projectKey=ABC")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert attribute(page, "gcj-action", "data-action") == "pull_request"
    for field in ("gcj-source", "gcj-target", "gcj-title", "gcj-body", "gcj-repository"):
        assert f'for="{field}"' in page  # every input has a label
    assert "Create pull request</button>" in page


def test_pages_take_only_tokens_for_themselves(client: FlaskClient, installed_site: JiraSite) -> None:
    assert client.get("/actions/create-pull-request?issueKey=ABC-1").status_code == 401
    context = installed_site.token("GET", "/", context=True)
    # only Jira's createBranch action may use a context token in the URL
    assert client.get(f"/actions/create-pull-request?issueKey=ABC-1&jwt={context}").status_code == 401
    other = installed_site.token("GET", "/actions/create-pull-request?issueKey=ABC-2")
    assert client.get(f"/actions/create-pull-request?issueKey=ABC-1&jwt={other}").status_code == 401


@pytest.mark.parametrize("path", ["/actions/create-branch", "/actions/create-pull-request"])
@pytest.mark.parametrize("key", ["", "ABC", "<b>-1"])
def test_bad_issue_keys_are_refused_without_echo(jira: Jira, installed_site: JiraSite, path: str, key: str) -> None:
    response = jira.get_page(installed_site, f"{path}?issueKey={key}")
    assert response.status_code == 400
    assert "<b>" not in response.get_data(as_text=True)


def test_summary_is_escaped_and_headers_are_strict(client: FlaskClient, installed_site: JiraSite) -> None:
    token = installed_site.token("GET", "/", context=True)
    response = client.get(
        "/actions/create-branch", query_string={"issueKey": "ABC-1", "issueSummary": XSS, "jwt": token}
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<img" not in page and "<script>alert" not in page
    assert attribute(page, "gcj-action", "data-issue-summary") == XSS
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self' https://connect-cdn.atl-paas.net" in csp and "object-src 'none'" in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def panel_page(jira: Jira, site: JiraSite, **kw: Any) -> str:
    response = jira.get_page(site, "/panel/issue?issueKey=ABC-7&projectKey=ABC", **kw)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("link_id", "path"),
    [("gcj-create-branch", "/actions/create-branch"), ("gcj-create-pull-request", "/actions/create-pull-request")],
)
def test_panel_links_open_the_dialogs_without_ap(
    client: FlaskClient, jira: Jira, installed_site: JiraSite, link_id: str, path: str
) -> None:
    page = panel_page(jira, installed_site, account_id="acct-anna")
    href = attribute(page, link_id, "href")
    assert attribute(page, link_id, "target") == "_blank"
    assert attribute(page, link_id, "data-dialog-key") in {
        "git-connect-create-branch",
        "git-connect-create-pull-request",
    }
    parts = urlsplit(href)
    assert parts.path == path
    query = parse_qs(parts.query)
    assert query["issueKey"] == ["ABC-7"] and query["projectKey"] == ["ABC"]
    opened = client.get(href)
    assert opened.status_code == 200
    assert attribute(opened.get_data(as_text=True), "gcj-action", "data-issue-key") == "ABC-7"
    # the token is for that URL only: another issue key is refused
    tampered = href.replace("issueKey=ABC-7", "issueKey=ABC-8")
    assert client.get(tampered).status_code == 401


def test_panel_links_act_as_the_viewer(client: FlaskClient, jira: Jira, installed_site: JiraSite) -> None:
    import jwt as pyjwt

    page = panel_page(jira, installed_site, account_id="acct-anna")
    token = parse_qs(urlsplit(attribute(page, "gcj-create-branch", "href")).query)["jwt"][0]
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "acct-anna" and claims["iss"] == installed_site.client_key
    assert claims["qsh"] != "context-qsh"
    assert claims["exp"] - claims["iat"] <= 15 * 60


def test_panel_offers_browse_and_token_pages(jira: Jira, installed_site: JiraSite) -> None:
    page = panel_page(jira, installed_site)
    base = f"{installed_site.base_url}/plugins/servlet/ac/git-connect-for-jira"
    assert attribute(page, "gcj-browse", "href") == f"{base}/git-repository-browser"
    assert attribute(page, "gcj-browse", "target") == "_top"
    assert attribute(page, "gcj-dev", "data-tokens-url") == f"{base}/my-git-tokens"
    assert attribute(page, "gcj-dev", "data-create-options-url") == "/api/issues/ABC-7/create-options"
    # both action buttons stay hidden until the API says a repository allows them
    assert re.search(r'id="gcj-create-branch"[^>]*\bhidden\b', page)
    assert re.search(r'id="gcj-create-pull-request"[^>]*\bhidden\b', page)


def test_dialogs_modules_in_the_descriptor(client: FlaskClient) -> None:
    dialogs = {d["key"]: d for d in client.get("/atlassian-connect.json").get_json()["modules"]["dialogs"]}
    assert set(dialogs) == {"git-connect-create-branch", "git-connect-create-pull-request"}
    assert dialogs["git-connect-create-branch"]["url"].startswith("/actions/create-branch?issueKey={issue.key}")
    assert dialogs["git-connect-create-pull-request"]["url"].startswith(
        "/actions/create-pull-request?issueKey={issue.key}"
    )
    assert all(d["options"]["chrome"] is False for d in dialogs.values())
