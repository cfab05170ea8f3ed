# ruff: noqa: F811 - the fixtures imported from admin_harness are parameters here
"""Re-sign-in of an existing integration: PUT /api/integrations/{id}/credentials with a new token
or a completed OAuth sign-in, against a GitHub on loopback that answers as GitHub documents:
``GET /user`` (login, ``X-OAuth-Scopes``), ``GET /user/repos``, and the web flow
(``/login/oauth/authorize``, ``POST /login/oauth/access_token`` -> ``{"access_token", "scope",
"token_type": "bearer"}``). Every refusal changes nothing."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connect_app.extensions import db
from connect_app.hosts.base import AuthType, ProviderId
from connect_app.integrations import credentials_of
from connect_app.models import Integration, IntegrationEvent, IntegrationStatus
from connect_app.oauth_settings import EXTENSION_KEY, OAuthClient, OAuthSettings
from tests.support.connect import JiraSite
from tests.support.stub_host import Reply, Seen, StubHost, loopback_only
from tests.web.admin_harness import ADMIN, AdminApi, QueueCalls, api, error_of, other_api, queue  # noqa: F401

OLD_TOKEN = "ghp_OldToken0123456789abcdefABCD"
NEW_TOKEN = "ghp_NewToken0123456789abcdefABCD"
BOT_TOKEN = "ghp_BotToken0123456789abcdefABCD"
OAUTH_TOKEN = "gho_OAuthToken0123456789abcdefAB"
CODE = "one-time-code-re-sign-in"
CLIENT_SECRET = "client-secret-never-shown-0123456789"


@dataclass
class GitHub:
    """GitHub's REST API and OAuth web flow on 127.0.0.1; each token is some account's."""

    accounts: dict[str, str] = field(
        default_factory=lambda: {OLD_TOKEN: "octo-admin", NEW_TOKEN: "Octo-Admin", BOT_TOKEN: "octo-bot"}
    )

    def __post_init__(self) -> None:
        self.accounts[OAUTH_TOKEN] = "octo-oauth"
        self.stub = StubHost(self._handle)
        self.url = self.stub.url

    def _handle(self, seen: Seen) -> Reply:
        if seen.path == "/login/oauth/authorize":
            back = {"code": CODE, "state": seen.query.get("state", "")}
            return Reply(302, headers={"Location": f"{seen.query['redirect_uri']}?{urllib.parse.urlencode(back)}"})
        if seen.path == "/login/oauth/access_token":
            return Reply(200, {"access_token": OAUTH_TOKEN, "scope": "repo,read:user", "token_type": "bearer"})
        login = self.accounts.get(seen.headers.get("authorization", "").removeprefix("Bearer "))
        if login is None:
            return Reply(401, {"message": "Bad credentials"})
        scopes = {"X-OAuth-Scopes": "repo, read:user"}
        if seen.path == "/user":
            return Reply(200, {"login": login, "id": 7}, scopes)
        if seen.path == "/user/repos":
            repo = {
                "id": 101,
                "full_name": "acme/widgets",
                "clone_url": "https://github.com/acme/widgets.git",
                "html_url": "https://github.com/acme/widgets",
                "default_branch": "main",
                "owner": {"login": "acme"},
                "private": True,
            }
            return Reply(200, [repo], scopes)
        return Reply(404, {"message": "Not Found"})


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHub]:
    loopback_only(monkeypatch)
    host = GitHub()
    yield host
    host.stub.close()


@pytest.fixture
def configured(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = OAuthSettings({ProviderId.GITHUB: OAuthClient("Iv1.client", CLIENT_SECRET)})
    monkeypatch.setitem(app.extensions, EXTENSION_KEY, settings)


def _create(api: AdminApi, github: GitHub) -> dict[str, Any]:
    body = {
        "provider": "github",
        "base_url": github.url,
        "auth": {"type": "pat", "token": OLD_TOKEN},
        "repositories": ["101"],
    }
    response = api("POST", "/api/integrations", body)
    assert response.status_code == 201, response.get_data(as_text=True)
    created: dict[str, Any] = response.get_json()
    return created


def _refused(app: Flask, integration_id: int) -> None:
    """The host refused the stored token (what indexing does on a 401)."""
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert integration is not None
        integration.status = IntegrationStatus.AUTH_FAILED.value
        integration.status_detail = "GitHub refused the token (401)"
        db.session.commit()
        db.session.remove()


def _state(app: Flask, integration_id: int) -> tuple[str, str | None, str, str | None]:
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert integration is not None
        token = credentials_of(integration).token
        assert token is not None and token not in integration.credentials_encrypted  # encrypted at rest
        state = (integration.status, integration.account_name, integration.auth_type, token)
        db.session.remove()
        return state


def _log(app: Flask, integration_id: int) -> list[IntegrationEvent]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(IntegrationEvent)
                .where(IntegrationEvent.integration_id == integration_id)
                .order_by(IntegrationEvent.id)
            )
        )
        for row in rows:
            db.session.expunge(row)
        db.session.remove()
        return rows


def _sign_in(api: AdminApi, client: FlaskClient, base_url: str, provider: str = "github") -> str:
    """Start an OAuth sign-in, let the popup go to the host and come back: the flow id."""
    response = api("POST", "/api/oauth/flows", {"provider": provider, "base_url": base_url})
    assert response.status_code == 201, response.get_data(as_text=True)
    flow = response.get_json()
    to_host = client.get(flow["authorize_url"])
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(to_host.headers["Location"]).query))
    back = client.get("/oauth/callback?" + urllib.parse.urlencode({"code": CODE, "state": query["state"]}))
    assert back.status_code == 200, back.get_data(as_text=True)
    flow_id: str = flow["id"]
    return flow_id


def test_a_new_token_replaces_refused_credentials_and_reindexes(
    app: Flask, api: AdminApi, github: GitHub, queue: QueueCalls
) -> None:
    created = _create(api, github)
    integration_id = created["id"]
    _refused(app, integration_id)
    assert _state(app, integration_id)[0] == "auth_failed"

    response = api(
        "PUT", f"/api/integrations/{integration_id}/credentials", {"auth": {"type": "pat", "token": NEW_TOKEN}}
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["id"] == integration_id and body["status"] != "error" and body["status_detail"] is None
    assert body["account_changed"] is False  # the same login, whatever its case
    assert body["previous_account_name"] == "octo-admin" and body["account_name"] == "Octo-Admin"
    assert body["reindex_requested"] == 1 and body["discovery_queued"] is True
    assert _state(app, integration_id) == ("active", "Octo-Admin", "pat", NEW_TOKEN)
    [(indexed, trigger)] = queue.indexed
    assert len(indexed) == 1 and trigger == "manual"
    [event] = _log(app, integration_id)
    assert (event.level, event.source) == ("info", "credentials")
    assert "a new access token" in event.message and "indexing resumes" in event.message
    assert event.detail["account_changed"] is False and event.detail["by"] == ADMIN
    assert all(NEW_TOKEN not in seen and OLD_TOKEN not in seen for seen in api.seen)


def test_another_host_account_is_accepted_and_reported(
    app: Flask, api: AdminApi, github: GitHub, queue: QueueCalls
) -> None:
    integration_id = _create(api, github)["id"]
    response = api(
        "PUT", f"/api/integrations/{integration_id}/credentials", {"auth": {"type": "pat", "token": BOT_TOKEN}}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["account_changed"] is True and body["account_name"] == "octo-bot"
    [event] = _log(app, integration_id)
    assert event.level == "warning" and "another account on the host: octo-bot (before: octo-admin)" in event.message
    assert event.detail["previous_account_name"] == "octo-admin"


def test_an_oauth_sign_in_replaces_the_credentials_and_is_used_up(
    app: Flask, api: AdminApi, client: FlaskClient, github: GitHub, configured: None, queue: QueueCalls
) -> None:
    integration_id = _create(api, github)["id"]
    _refused(app, integration_id)
    flow_id = _sign_in(api, client, github.url)

    response = api("PUT", f"/api/integrations/{integration_id}/credentials", {"oauth_flow": flow_id})

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["auth_type"] == "oauth" and body["account_changed"] is True and body["account_name"] == "octo-oauth"
    status, account, auth_type, token = _state(app, integration_id)
    assert (status, account, auth_type, token) == ("active", "octo-oauth", AuthType.OAUTH.value, OAUTH_TOKEN)
    assert api("GET", f"/api/oauth/flows/{flow_id}").status_code == 404  # used up
    again = api("PUT", f"/api/integrations/{integration_id}/credentials", {"oauth_flow": flow_id})
    assert again.status_code == 400 and error_of(again)["code"] == "oauth_flow_not_found"
    [event] = _log(app, integration_id)
    assert "an OAuth sign-in" in event.message and event.detail["oauth"] is True
    assert all(OAUTH_TOKEN not in seen and CLIENT_SECRET not in seen for seen in api.seen)


def test_refusals_are_400s_in_words_and_change_nothing(
    app: Flask, api: AdminApi, client: FlaskClient, github: GitHub, configured: None, queue: QueueCalls
) -> None:
    integration_id = _create(api, github)["id"]
    _refused(app, integration_id)
    before = _state(app, integration_id)
    url = f"/api/integrations/{integration_id}/credentials"
    other_server = GitHub()
    try:
        foreign_flow = _sign_in(api, client, other_server.url)
        unfinished = api("POST", "/api/oauth/flows", {"provider": "github", "base_url": github.url}).get_json()["id"]
        cases: list[tuple[Any, str, str, str]] = [
            ({"auth": {"type": "pat", "token": "ghp_Revoked000000000000000000000"}}, "auth", "bad_credentials", "401"),
            ({"auth": {"type": "password", "username": "u", "password": "p"}}, "auth.type", "bad_auth_type", "pat"),
            ({"auth": {"type": "pat"}}, "auth.token", "required", "token is required"),
            ({}, "auth", "required", "either auth"),
            (
                {"auth": {"type": "pat", "token": NEW_TOKEN}, "oauth_flow": foreign_flow},
                "auth",
                "invalid_field",
                "both",
            ),
            ({"token": NEW_TOKEN}, "token", "unknown_field", "unknown field"),
            ({"oauth_flow": "no-such-flow"}, "oauth_flow", "oauth_flow_not_found", "sign-in again"),
            ({"oauth_flow": 12}, "oauth_flow", "invalid_field", "id of an OAuth sign-in"),
            ({"oauth_flow": foreign_flow}, "oauth_flow", "oauth_flow_mismatch", "another host or server"),
            ({"oauth_flow": unfinished}, "oauth_flow", "oauth_not_authorized", "Sign in"),
        ]
        for body, where, code, words in cases:
            response = api("PUT", url, body)
            assert response.status_code == 400, (body, response.get_data(as_text=True))
            error = error_of(response)
            assert (error["field"], error["code"]) == (where, code), body
            assert words in error["message"], (body, error["message"])
    finally:
        other_server.stub.close()
    assert _state(app, integration_id) == before
    assert _log(app, integration_id) == [] and queue.indexed == []


def test_another_tenant_or_admin_cannot_use_it(
    app: Flask,
    api: AdminApi,
    other_api: AdminApi,
    client: FlaskClient,
    github: GitHub,
    configured: None,
    queue: QueueCalls,
    jira_stub: Any,
) -> None:
    integration_id = _create(api, github)["id"]
    before = _state(app, integration_id)
    url = f"/api/integrations/{integration_id}/credentials"
    response = other_api("PUT", url, {"auth": {"type": "pat", "token": BOT_TOKEN}})
    assert response.status_code == 404 and error_of(response)["code"] == "integration_not_found"
    # An OAuth sign-in belongs to the admin who made it.
    flow_id = _sign_in(api, client, github.url)
    jira_stub.admins.add("acct-other-admin")
    response = api("PUT", url, {"oauth_flow": flow_id}, account="acct-other-admin")
    assert response.status_code == 400 and error_of(response)["code"] == "oauth_flow_not_found"
    assert _state(app, integration_id) == before


def test_re_sign_in_is_for_jira_admins_only_and_documented(
    app: Flask, api: AdminApi, client: FlaskClient, installed_site: JiraSite
) -> None:
    url = "/api/integrations/1/credentials"
    response = api("PUT", url, {"auth": {"type": "pat", "token": "x"}}, account="acct-plain-user")
    assert response.status_code == 403 and error_of(response)["code"] == "admin_required"
    assert client.put(url, json={"auth": {"type": "pat", "token": "x"}}).status_code == 401
    doc = client.get("/api/openapi.json").get_json()
    put = doc["paths"]["/api/integrations/{integration_id}/credentials"]["put"]
    schema = put["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"auth", "oauth_flow"} and "400" in put["responses"]
