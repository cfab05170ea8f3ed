# ruff: noqa: F811 - the fixtures imported from admin_harness are parameters here
"""The smart-commit settings through the admin API: read in the integration's settings,
changed with PATCH, refused in words (nothing changed) when "jira" cannot work."""

from __future__ import annotations

from typing import Any

from flask import Flask

from connect_app.extensions import db
from connect_app.jira.smart_commits import smart_commit_max_age, smart_commit_mode
from connect_app.models import Integration, SmartCommitMode
from tests.jira.devinfo_data import GitData
from tests.support.connect import JiraSite
from tests.web.admin_harness import AdminApi, api, error_of, tenant_of  # noqa: F401


def _integration(app: Flask, site: JiraSite, **features: Any) -> int:
    with app.app_context():
        integration_id = GitData(tenant_of(app, site)).integration(**features).id
        db.session.remove()
        return integration_id


def _stored(app: Flask, integration_id: int) -> Integration:
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert integration is not None
        db.session.expunge(integration)
        db.session.remove()
        return integration


def test_read_and_change_who_runs_smart_commits(app: Flask, api: AdminApi, installed_site: JiraSite) -> None:
    integration_id = _integration(app, installed_site)
    url = f"/api/integrations/{integration_id}"
    settings = api("GET", url).get_json()["settings"]
    assert settings["smart_commits_by"] == "jira" and settings["smart_commits_max_age_days"] == 14

    response = api("PATCH", url, {"settings": {"smart_commits_by": "app", "smart_commits_max_age_days": 30}})
    assert response.status_code == 200, response.get_data(as_text=True)
    settings = response.get_json()["settings"]
    assert (settings["smart_commits_by"], settings["smart_commits_max_age_days"]) == ("app", 30)
    assert settings["features"]["development_panel"] is True  # the switches are untouched
    stored = _stored(app, integration_id)
    assert smart_commit_mode(stored) is SmartCommitMode.APP and smart_commit_max_age(stored).days == 30

    # Switching the Development panel off: the app runs them (whatever is stored), and says so.
    response = api("PATCH", url, {"settings": {"smart_commits_by": "jira"}})
    assert response.get_json()["settings"]["smart_commits_by"] == "jira"
    response = api("PATCH", url, {"settings": {"features": {"development_panel": False}}})
    assert response.get_json()["settings"]["smart_commits_by"] == "app"


def test_jira_without_the_development_panel_is_refused_and_nothing_changes(
    app: Flask, api: AdminApi, installed_site: JiraSite
) -> None:
    integration_id = _integration(app, installed_site, development_panel=False, smart_commits_by="app")
    url = f"/api/integrations/{integration_id}"
    for body in (
        {"settings": {"smart_commits_by": "jira", "smart_commits_max_age_days": 7}},
        {"display_name": "renamed", "settings": {"smart_commits_by": "jira"}},
        {"settings": {"smart_commits_by": "jira", "features": {"development_panel": False}}},
    ):
        response = api("PATCH", url, body)
        error = error_of(response)
        assert response.status_code == 400 and error["field"] == "settings.smart_commits_by"
        assert error["code"] == "smart_commits_need_development_panel"
        assert "Development panel" in error["message"]
    stored = _stored(app, integration_id)
    assert stored.display_name == "acme" and stored.features.get("smart_commits_by") == "app"
    assert "smart_commits_max_age_days" not in stored.features
    # With the panel switched on in the same request, "jira" is fine.
    body = {"settings": {"smart_commits_by": "jira", "features": {"development_panel": True}}}
    assert api("PATCH", url, body).get_json()["settings"]["smart_commits_by"] == "jira"


def test_bad_values_are_400s_in_words(app: Flask, api: AdminApi, installed_site: JiraSite) -> None:
    integration_id = _integration(app, installed_site)
    url = f"/api/integrations/{integration_id}"
    response = api("PATCH", url, {"settings": {"smart_commits_max_age_days": 400}})
    assert response.status_code == 400 and "between 1 and 365 days" in error_of(response)["message"]
    response = api("PATCH", url, {"settings": {"smart_commits_by": "nobody"}})
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_smart_commits_by"


def test_the_settings_are_in_the_openapi_document(app: Flask) -> None:
    doc = app.test_client().get("/api/openapi.json").get_json()
    settings = doc["components"]["schemas"]["Integration"]["properties"]["settings"]["properties"]
    assert settings["smart_commits_by"]["enum"] == ["app", "jira"]
    assert (settings["smart_commits_max_age_days"]["minimum"], settings["smart_commits_max_age_days"]["maximum"]) == (
        1,
        365,
    )
