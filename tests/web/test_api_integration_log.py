# ruff: noqa: F811 - the fixtures imported from admin_harness are parameters here
"""The integration log API (GET /api/integrations/{id}/log and /log/summary) through Flask with
signed context tokens: events written by a real Development panel push against the Jira stub,
filters and pages, the summary of where things stand, and tenant isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connect_app.extensions import db
from connect_app.jira.devinfo import push_repository
from connect_app.models import EventLevel, EventSource, Integration, Repository
from connect_app.services.integration_log import record_event
from tests.jira.devinfo_data import GitData
from tests.support.connect import JiraSite
from tests.support.jira_stub import JiraStub
from tests.web.admin_harness import ADMIN, AdminApi, api, error_of, other_api, tenant_of  # noqa: F401


@pytest.fixture(autouse=True)
def _reset_stub(jira_stub: JiraStub) -> Iterator[None]:
    yield
    jira_stub.reset_devinfo()


def _setup(app: Flask, site: JiraSite) -> tuple[int, int, int]:
    """An integration with two repositories; returns (integration, widgets, gadgets) ids."""
    with app.app_context():
        data = GitData(tenant_of(app, site))
        integration = data.integration()
        widgets, gadgets = data.repository(integration, "widgets"), data.repository(integration, "gadgets")
        ids = integration.id, widgets.id, gadgets.id
        db.session.remove()
        return ids


def _record(app: Flask, integration_id: int, n: int, **kw: Any) -> None:
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert integration is not None
        for i in range(n):
            record_event(
                db.session(),
                tenant_id=integration.tenant_id,
                integration_id=integration_id,
                level=kw.get("level", EventLevel.INFO),
                source=kw.get("source", EventSource.WEBHOOK),
                message=f"{kw.get('prefix', 'event')} {i}",
                repository_id=kw.get("repository_id"),
            )
        db.session.commit()
        db.session.remove()


def test_a_push_with_findings_shows_in_the_log_and_the_summary(
    app: Flask, api: AdminApi, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    integration_id, widgets_id, _ = _setup(app, installed_site)
    with app.app_context():
        data = GitData(tenant_of(app, installed_site))
        repo = db.session.get(Repository, widgets_id)
        assert repo is not None
        data.commit(repo, "a" * 40, "ABC-1 fine", ["ABC-1"])
        data.commit(repo, "b" * 40, "ABC-2 refused", ["ABC-2", "NOPE-1"])
        jira_stub.devinfo_refuse_ids = {"a" * 40}
        jira_stub.devinfo_known_keys = {"ABC-1", "ABC-2"}
        push_repository(db.session, widgets_id, since=None, backfill=True)
        db.session.remove()

    response = api("GET", f"/api/integrations/{integration_id}/log")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    [event] = body["events"]
    assert body["next_before"] is None
    assert set(event) == {"id", "at", "level", "source", "message", "repository", "detail"}
    assert (event["level"], event["source"]) == ("warning", "devinfo")
    assert event["repository"] == {"id": widgets_id, "name": "acme/widgets"}
    assert "refused by the stub" in event["message"] and "NOPE-1" in event["message"]
    assert event["detail"]["unknown_issue_keys"] == ["NOPE-1"]

    summary = api("GET", f"/api/integrations/{integration_id}/log/summary").get_json()
    panel = summary["development_panel"]
    assert panel["enabled"] is True and panel["site"]["status"] == "ok"
    assert panel["repository_count"] == 1 and panel["truncated"] is False
    [state] = panel["repositories"]
    assert state["repository"] == {"id": widgets_id, "name": "acme/widgets"}
    assert state["status"] == "ok" and state["unknown_issue_keys"] == ["NOPE-1"] and state["resuming"] is False
    assert state["last_result"]["failed_count"] == 1 and state["last_result"]["failed"][0]["id"] == "a" * 40
    assert summary["smart_commits"] == {"enabled": True, "run_by": "jira", "max_age_days": 14, "recent": []}


def test_the_summary_shows_jira_refusing_the_app(
    app: Flask, api: AdminApi, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    integration_id, widgets_id, _ = _setup(app, installed_site)
    with app.app_context():
        repo = db.session.get(Repository, widgets_id)
        assert repo is not None
        GitData(repo.tenant_id).commit(repo, "a" * 40, "ABC-1", ["ABC-1"])
        jira_stub.devinfo_status = 401
        push_repository(db.session, widgets_id, since=None, backfill=True)
        db.session.remove()
    summary = api("GET", f"/api/integrations/{integration_id}/log/summary").get_json()
    site = summary["development_panel"]["site"]
    assert site["status"] == "needs_attention" and site["http_status"] == 401 and "Reinstall" in site["detail"]
    assert summary["development_panel"]["repositories"][0]["status"] == "needs_attention"
    errors = api("GET", f"/api/integrations/{integration_id}/log?level=error").get_json()["events"]
    assert len(errors) == 1 and "Reinstall" in errors[0]["message"]


def test_filters_and_pages(app: Flask, api: AdminApi, installed_site: JiraSite) -> None:
    integration_id, widgets_id, gadgets_id = _setup(app, installed_site)
    _record(app, integration_id, 3, prefix="hook")
    _record(app, integration_id, 2, prefix="sc", source=EventSource.SMART_COMMIT, level=EventLevel.WARNING,
            repository_id=gadgets_id)  # fmt: skip
    _record(app, integration_id, 1, prefix="cred", source=EventSource.CREDENTIALS, level=EventLevel.ERROR)
    url = f"/api/integrations/{integration_id}/log"

    def messages(query: str) -> list[str]:
        response = api("GET", url + query)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [e["message"] for e in response.get_json()["events"]]

    assert messages("") == ["cred 0", "sc 1", "sc 0", "hook 2", "hook 1", "hook 0"]
    assert messages("?level=warning,error") == ["cred 0", "sc 1", "sc 0"]
    assert messages("?source=webhook") == ["hook 2", "hook 1", "hook 0"]
    assert messages(f"?repository={gadgets_id}") == ["sc 1", "sc 0"]
    assert messages(f"?repository={widgets_id}") == []
    first = api("GET", url + "?limit=4").get_json()
    assert [e["message"] for e in first["events"]] == ["cred 0", "sc 1", "sc 0", "hook 2"]
    assert first["events"][1]["repository"] == {"id": gadgets_id, "name": "acme/gadgets"}
    assert first["events"][0]["repository"] is None
    second = api("GET", url + f"?limit=4&before={first['next_before']}").get_json()
    assert [e["message"] for e in second["events"]] == ["hook 1", "hook 0"] and second["next_before"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?level=loud", "level"),
        ("?source=email", "source"),
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?before=x", "before"),
        ("?repository=-1", "repository"),
    ],
)
def test_bad_filters_are_400s_naming_the_field(
    app: Flask, api: AdminApi, installed_site: JiraSite, query: str, field: str
) -> None:
    integration_id, _, _ = _setup(app, installed_site)
    response = api("GET", f"/api/integrations/{integration_id}/log{query}")
    assert response.status_code == 400 and error_of(response)["field"] == field


def test_another_tenants_integration_or_repository_is_a_404(
    app: Flask, api: AdminApi, other_api: AdminApi, installed_site: JiraSite, other_site: JiraSite
) -> None:
    integration_id, widgets_id, _ = _setup(app, installed_site)
    other_integration, other_repo, _ = _setup(app, other_site)
    _record(app, integration_id, 2)
    for url in (f"/api/integrations/{integration_id}/log", f"/api/integrations/{integration_id}/log/summary"):
        response = other_api("GET", url)
        assert response.status_code == 404 and error_of(response)["code"] == "integration_not_found"
    assert other_api("GET", f"/api/integrations/{other_integration}/log").get_json()["events"] == []
    # a repository of another tenant, or of another integration of the same tenant
    response = api("GET", f"/api/integrations/{integration_id}/log?repository={other_repo}")
    assert response.status_code == 404
    with app.app_context():
        data = GitData(tenant_of(app, installed_site))
        second = data.repository(data.integration("second"), "elsewhere")
        second_id = second.id
        db.session.remove()
    response = api("GET", f"/api/integrations/{integration_id}/log?repository={second_id}")
    assert response.status_code == 404 and error_of(response)["code"] == "repository_not_found"
    assert api("GET", f"/api/integrations/{integration_id}/log?repository={widgets_id}").status_code == 200


@pytest.mark.parametrize("suffix", ["log", "log/summary"])
def test_the_log_is_for_jira_admins_only(
    app: Flask, api: AdminApi, client: FlaskClient, installed_site: JiraSite, suffix: str
) -> None:
    integration_id, _, _ = _setup(app, installed_site)
    url = f"/api/integrations/{integration_id}/{suffix}"
    response = api("GET", url, account="acct-plain-user")
    assert response.status_code == 403 and error_of(response)["code"] == "admin_required"
    assert client.get(url).status_code == 401
    assert api("GET", url, account=ADMIN).status_code == 200


def test_the_log_routes_are_in_the_openapi_document(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    log = doc["paths"]["/api/integrations/{integration_id}/log"]["get"]
    assert {p["name"] for p in log["parameters"]} == {"level", "source", "repository", "before", "limit"}
    assert "get" in doc["paths"]["/api/integrations/{integration_id}/log/summary"]
    event = doc["components"]["schemas"]["IntegrationEvent"]
    assert set(event["required"]) == {"id", "at", "level", "source", "message", "repository", "detail"}
