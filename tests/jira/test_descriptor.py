"""The descriptor: required fields, modules, and every URL in it routes to a real page."""

from __future__ import annotations

import re

from tests.support.connect import Jira, JiraSite


def test_descriptor_required_fields(client, settings) -> None:
    d = client.get("/atlassian-connect.json").get_json()
    assert d["baseUrl"] == settings.base_url
    assert d["key"] == settings.app_key
    assert d["authentication"] == {"type": "jwt"}
    assert d["apiMigrations"] == {"signed-install": True, "context-qsh": True, "gdpr": True}
    assert set(d["lifecycle"]) == {"installed", "uninstalled", "enabled", "disabled"}
    assert {"READ", "WRITE"} <= set(d["scopes"])
    modules = d["modules"]
    tool = modules["jiraDevelopmentTool"]
    assert set(tool["capabilities"]) == {"commit", "branch", "pull_request"}
    assert "{issue.key}" in tool["actions"]["createBranch"]["templateUrl"]
    assert modules["webPanels"][0]["location"] == "atl.jira.view.issue.right.context"
    [admin] = modules["adminPages"]
    assert admin["name"]["value"] == "Manage repositories"
    assert {"condition": "user_is_admin"} in admin["conditions"]
    assert modules["configurePage"]["url"] and modules["postInstallPage"]["url"]
    assert modules["generalPages"][0]["url"]


def test_descriptor_follows_environment(app, settings) -> None:
    from connect_app.jira.descriptor import build_descriptor

    d = build_descriptor(settings.with_overrides(base_url="https://x.example", app_key="my-fork"))
    assert (d["baseUrl"], d["key"]) == ("https://x.example", "my-fork")


def _fill(url: str) -> str:
    values = {"issue.key": "ABC-1", "issue.summary": "Fix+it", "project.key": "ABC", "jwt": "", "ac.integration": ""}
    return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], url).replace("&jwt=", "")


def test_every_descriptor_url_routes(client, app, jira: Jira, installed_site: JiraSite, jira_stub) -> None:
    from connect_app.jira.descriptor import module_urls

    jira_stub.admins.add("acct-admin")
    d = client.get("/atlassian-connect.json").get_json()
    urls = list(module_urls(d))
    assert len(urls) >= 10
    adapter = app.url_map.bind("localhost")
    for key, url in urls:
        path = _fill(url)
        if key == "lifecycle":
            endpoint, _ = adapter.match(path, method="POST")
            assert endpoint.startswith("lifecycle.")
            continue
        response = jira.get_page(installed_site, path, account_id="acct-admin")
        assert response.status_code == 200, (key, path, response.get_data(as_text=True)[:300])
        assert response.mimetype == "text/html"
    assert client.get(d["modules"]["jiraDevelopmentTool"]["logoUrl"]).status_code == 200


def test_health_and_readiness(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_unknown_route_is_json_404(client) -> None:
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_panel_rejects_a_bad_issue_key(jira: Jira, installed_site: JiraSite) -> None:
    response = jira.get_page(installed_site, "/panel/issue?issueKey=<script>")
    assert response.status_code == 400
    assert "<script>" not in response.get_data(as_text=True)
