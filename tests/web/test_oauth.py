# ruff: noqa: F811 - the fixtures imported from admin_harness are parameters here
"""OAuth sign-in for the Add-integration wizard (connect_app/web/oauth.py, api_admin_ui.py):
the flow started by the wizard, the popup's authorize redirect and the host's callback, against
a host on loopback that answers with the token responses the hosts document:

* GitHub, "Authorizing OAuth apps": ``POST /login/oauth/access_token`` answers
  ``{"access_token", "scope", "token_type": "bearer"}`` (a bad code: 200 with ``error``);
* GitLab, "OAuth 2.0 identity provider API": ``POST /oauth/token`` answers
  ``{"access_token", "token_type": "bearer", "expires_in": 7200, "refresh_token", "created_at"}``.

Every refusal (state unknown, expired, replayed, another browser, another tenant, another
admin) ends with a page in words and stores no token and no integration.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, ProviderId
from connect_app.integrations import credentials_of
from connect_app.models import Integration
from connect_app.oauth_settings import EXTENSION_KEY, OAuthClient, OAuthSettings, env_prefix
from connect_app.web import oauth
from tests.support.stub_host import Reply, Seen, StubHost, loopback_only
from tests.web.admin_harness import ADMIN, AdminApi, QueueCalls, api, count, error_of, other_api, queue  # noqa: F401

CLIENT_ID = "Iv1.client-id-0123"
CLIENT_SECRET = "client-secret-must-never-show-0123456789"
CODE = "one-time-code-abc123"
ACCESS = "gho_AccessTokenFromOAuth0123456789"
REFRESH = "refresh-token-from-gitlab-0123"
GITLAB_CREATED_AT = 1_607_635_748


@dataclass
class OAuthHost:
    """GitHub's web flow and REST API, GitLab's token endpoint, on 127.0.0.1."""

    token_replies: list[Reply] = field(default_factory=list)  # next replies of the token endpoint
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stub = StubHost(self._handle)
        self.url = self.stub.url

    def token_requests(self) -> list[dict[str, str]]:
        return [
            dict(urllib.parse.parse_qsl(s.body.decode()))
            for s in self.stub.seen
            if s.path in ("/login/oauth/access_token", "/oauth/token")
        ]

    def _handle(self, seen: Seen) -> Reply:
        if seen.path == "/login/oauth/authorize":  # the admin clicks "Authorize" at once
            back = {"code": CODE, "state": seen.query.get("state", "")}
            return Reply(302, headers={"Location": f"{seen.query['redirect_uri']}?{urllib.parse.urlencode(back)}"})
        if seen.path == "/login/oauth/access_token":
            return self.token_replies.pop(0) if self.token_replies else Reply(200, github_token())
        if seen.path == "/oauth/token":
            return self.token_replies.pop(0) if self.token_replies else Reply(200, gitlab_token())
        if seen.headers.get("authorization") != f"Bearer {ACCESS}":
            return Reply(401, {"message": "Bad credentials"})
        scopes = {"X-OAuth-Scopes": "repo, admin:repo_hook, read:user"}
        if seen.path == "/user":
            return Reply(200, {"login": "octo-oauth", "id": 7}, scopes)
        if seen.path == "/user/repos":
            repo = {
                "id": 501,
                "full_name": "octo/app",
                "clone_url": "https://github.com/octo/app.git",
                "html_url": "https://github.com/octo/app",
                "default_branch": "main",
                "owner": {"login": "octo"},
                "private": True,
            }
            return Reply(200, [repo], scopes)
        return Reply(404, {"message": "Not Found"})


def github_token() -> dict[str, Any]:
    return {"access_token": ACCESS, "scope": "repo,admin:repo_hook,read:user", "token_type": "bearer"}


def gitlab_token() -> dict[str, Any]:
    return {
        "access_token": ACCESS,
        "token_type": "bearer",
        "expires_in": 7200,
        "refresh_token": REFRESH,
        "created_at": GITLAB_CREATED_AT,
    }


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[OAuthHost]:
    loopback_only(monkeypatch)
    found = OAuthHost()
    yield found
    found.stub.close()


@pytest.fixture
def configured(app: Flask, monkeypatch: pytest.MonkeyPatch) -> OAuthSettings:
    settings = OAuthSettings(
        {
            ProviderId.GITHUB: OAuthClient(CLIENT_ID, CLIENT_SECRET),
            ProviderId.GITLAB_SELF_MANAGED: OAuthClient(CLIENT_ID, CLIENT_SECRET),
        }
    )
    monkeypatch.setitem(app.extensions, EXTENSION_KEY, settings)
    return settings


def start(api: AdminApi, host: OAuthHost, provider: str = "github") -> dict[str, Any]:
    response = api("POST", "/api/oauth/flows", {"provider": provider, "base_url": host.url})
    assert response.status_code == 201, response.get_data(as_text=True)
    flow: dict[str, Any] = response.get_json()
    return flow


def launch(client: FlaskClient, flow: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The popup opens the flow's URL: a redirect to the host's authorize page."""
    response = client.get(flow["authorize_url"])
    assert response.status_code == 302, response.get_data(as_text=True)
    parts = urllib.parse.urlsplit(response.headers["Location"])
    return f"{parts.scheme}://{parts.netloc}{parts.path}", dict(urllib.parse.parse_qsl(parts.query))


def back(client: FlaskClient, **params: str) -> TestResponse:
    """The host sends the popup back to the callback."""
    return client.get("/oauth/callback?" + urllib.parse.urlencode(params), headers={"Accept": "text/html"})


def flow_status(api: AdminApi, flow_id: str) -> TestResponse:
    return api("GET", f"/api/oauth/flows/{flow_id}")


def stored_tokens(app: Flask) -> list[str]:
    """Every flow in Redis that holds tokens."""
    with app.app_context():
        client = redis_conn.client
        found = []
        for key in client.scan_iter(match=oauth.FLOW_KEY + "*"):
            data = json.loads(client.get(key) or "{}")
            if data.get("tokens_encrypted"):
                found.append(data["id"])
        return found


# --- settings ---------------------------------------------------------------------------


def test_settings_read_pairs_per_provider_and_hide_secrets() -> None:
    env = {
        "OAUTH_GITHUB_CLIENT_ID": "gh-id",
        "OAUTH_GITHUB_CLIENT_SECRET": "gh-secret",
        "OAUTH_GITLAB_SELF_MANAGED_CLIENT_ID": "gl-id",  # no secret: not configured
        "OAUTH_AZURE_DEVOPS_CLIENT_ID": " az-id ",
        "OAUTH_AZURE_DEVOPS_CLIENT_SECRET": " az-secret ",
        "OAUTH_GERRIT_CLIENT_ID": "gerrit has no OAuth",
        "OAUTH_GERRIT_CLIENT_SECRET": "ignored",
    }
    settings = OAuthSettings.from_env(env)
    assert settings.configured() == [ProviderId.GITHUB, ProviderId.AZURE_DEVOPS]
    assert settings.client("github") == OAuthClient("gh-id", "gh-secret")
    assert settings.client("azure-devops") == OAuthClient("az-id", "az-secret")
    assert settings.client("gitlab-self-managed") is None and settings.client("nope") is None
    assert "gh-secret" not in repr(settings) and "az-secret" not in repr(settings.client("azure-devops"))
    assert env_prefix(ProviderId.BITBUCKET_CLOUD) == "OAUTH_BITBUCKET_CLOUD"


def test_providers_say_which_are_configured_and_the_redirect_url(api: AdminApi, configured: OAuthSettings) -> None:
    body = api("GET", "/api/oauth/providers").get_json()
    assert body["redirect_uri"] == "https://git-connect.test/oauth/callback"
    states = {p["id"]: p["configured"] for p in body["providers"]}
    assert states == {
        "github": True,
        "github-enterprise": False,
        "gitlab": False,
        "gitlab-self-managed": True,
        "bitbucket-cloud": False,
        "azure-devops": False,
    }


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/oauth/providers"),
        ("POST", "/api/oauth/flows"),
        ("GET", "/api/oauth/flows/abc"),
        ("DELETE", "/api/oauth/flows/abc"),
        ("POST", "/api/oauth/flows/abc/validate"),
        ("POST", "/api/oauth/flows/abc/integration"),
    ],
)
def test_the_oauth_api_is_for_jira_admins_only(api: AdminApi, client: FlaskClient, method: str, url: str) -> None:
    response = api(method, url, {"provider": "github"}, account="acct-plain-user")
    assert response.status_code == 403 and error_of(response)["code"] == "admin_required"
    assert client.open(url, method=method).status_code == 401


def test_starting_needs_a_configured_oauth_host(api: AdminApi, configured: OAuthSettings) -> None:
    response = api("POST", "/api/oauth/flows", {"provider": "gitlab"})
    error = error_of(response)
    assert response.status_code == 400 and error["code"] == "oauth_not_configured"
    assert "OAUTH_GITLAB_CLIENT_ID" in error["message"] and error["field"] == "auth.type"
    response = api("POST", "/api/oauth/flows", {"provider": "bitbucket-datacenter", "base_url": "http://127.0.0.1:9"})
    assert response.status_code == 400 and error_of(response)["code"] == "bad_auth_type"
    response = api("POST", "/api/oauth/flows", {"provider": "github", "base_url": "http://169.254.169.254"})
    assert response.status_code == 400 and error_of(response)["field"] == "base_url"
    assert CLIENT_SECRET not in "".join(api.seen)


# --- the good flows ---------------------------------------------------------------------


def test_github_sign_in_then_validate_and_create(
    app: Flask, api: AdminApi, client: FlaskClient, host: OAuthHost, configured: OAuthSettings, queue: QueueCalls
) -> None:
    flow = start(api, host)
    assert flow["status"] == "created" and flow["authorize_url"] == f"/oauth/authorize?flow={flow['id']}"
    where, query = launch(client, flow)
    assert where == f"{host.url}/login/oauth/authorize"
    assert query["client_id"] == CLIENT_ID and query["redirect_uri"] == "https://git-connect.test/oauth/callback"
    assert query["scope"] == "repo admin:repo_hook read:user" and len(query["state"]) >= 40
    cookie = client.get_cookie(oauth.COOKIE, path="/oauth/")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax" and cookie.secure
    assert flow_status(api, flow["id"]).get_json()["status"] == "redirected"

    page = back(client, code=CODE, state=query["state"])
    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    assert "Signed in to GitHub" in html and f'data-flow="{flow["id"]}"' in html and 'data-ok="true"' in html
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    for secret in (CODE, CLIENT_SECRET, ACCESS):
        assert secret not in html
    # GitHub's documented code exchange: client id and secret in the form, no grant_type
    assert host.token_requests() == [
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "code": CODE,
            "redirect_uri": "https://git-connect.test/oauth/callback",
        }
    ]
    status = flow_status(api, flow["id"]).get_json()
    assert status["status"] == "authorized" and status["error"] is None

    checked = api("POST", f"/api/oauth/flows/{flow['id']}/validate", {"list_repositories": True})
    assert checked.status_code == 200, checked.get_data(as_text=True)
    assert checked.get_json()["account_name"] == "octo-oauth"
    assert [r["name"] for r in checked.get_json()["repositories"]] == ["octo/app"]

    body = {"display_name": "GitHub via OAuth", "repositories": ["501"], "settings": {"project_keys": ["ABC"]}}
    created = api("POST", f"/api/oauth/flows/{flow['id']}/integration", body)
    assert created.status_code == 201, created.get_data(as_text=True)
    result = created.get_json()
    assert result["auth_type"] == "oauth" and result["account_name"] == "octo-oauth"
    assert result["repositories_added"] == 1 and result["settings"]["project_keys"] == ["ABC"]
    assert queue.started == [result["id"]]
    with app.app_context():
        integration = db.session().get(Integration, result["id"])
        assert integration is not None and integration.base_url == host.url
        assert ACCESS not in integration.credentials_encrypted  # encrypted at rest
        credentials = credentials_of(integration)
        assert credentials.auth_type is AuthType.OAUTH and credentials.token == ACCESS
    # the flow is used up: its tokens are gone
    assert flow_status(api, flow["id"]).status_code == 404
    assert stored_tokens(app) == []
    assert all(ACCESS not in seen and CLIENT_SECRET not in seen for seen in api.seen)


def test_gitlab_tokens_keep_refresh_token_and_expiry(
    app: Flask, api: AdminApi, client: FlaskClient, host: OAuthHost, configured: OAuthSettings
) -> None:
    flow = start(api, host, "gitlab-self-managed")
    where, query = launch(client, flow)
    assert where == f"{host.url}/oauth/authorize" and query["response_type"] == "code" and query["scope"] == "api"
    assert back(client, code=CODE, state=query["state"]).status_code == 200
    (sent,) = host.token_requests()
    assert sent["grant_type"] == "authorization_code" and sent["code"] == CODE
    with app.app_context():
        found = oauth.load_flow(flow["id"])
        assert found is not None and found.tokens_encrypted and ACCESS not in found.tokens_encrypted
        credentials = oauth.flow_credentials(found)
    assert credentials.token == ACCESS and credentials.extra["refresh_token"] == REFRESH
    assert credentials.extra["expires_at"].startswith("2020-12-10T23:29:08")  # created_at + 7200 s


def test_cancel_drops_the_flow(api: AdminApi, client: FlaskClient, host: OAuthHost, configured: OAuthSettings) -> None:
    flow = start(api, host)
    _, query = launch(client, flow)
    assert api("DELETE", f"/api/oauth/flows/{flow['id']}").status_code == 200
    assert flow_status(api, flow["id"]).status_code == 404
    assert back(client, code=CODE, state=query["state"]).status_code == 400
    assert host.token_requests() == []


# --- refusals: nothing stored -------------------------------------------------------------


def test_a_state_we_did_not_send_is_refused(
    app: Flask, api: AdminApi, client: FlaskClient, host: OAuthHost, configured: OAuthSettings
) -> None:
    flow = start(api, host)
    _, query = launch(client, flow)
    for state in ("", "forged-" + query["state"][7:], query["state"] + "x"):
        page = back(client, code=CODE, state=state)
        assert page.status_code == 400
        assert "This sign-in has expired or was already used" in page.get_data(as_text=True)
    assert host.token_requests() == []
    assert flow_status(api, flow["id"]).get_json()["status"] == "redirected"
    assert stored_tokens(app) == [] and count(app, Integration) == 0


def test_an_expired_state_is_refused(
    app: Flask,
    api: AdminApi,
    client: FlaskClient,
    host: OAuthHost,
    configured: OAuthSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flow = start(api, host)
    _, query = launch(client, flow)
    later = time.time() + oauth.START_TTL + 1
    monkeypatch.setattr(oauth.time, "time", lambda: later)
    page = back(client, code=CODE, state=query["state"])
    assert page.status_code == 400 and "expired" in page.get_data(as_text=True)
    assert host.token_requests() == [] and stored_tokens(app) == []


def test_a_state_is_used_once(
    app: Flask, api: AdminApi, client: FlaskClient, host: OAuthHost, configured: OAuthSettings
) -> None:
    flow = start(api, host)
    _, query = launch(client, flow)
    assert back(client, code=CODE, state=query["state"]).status_code == 200
    again = back(client, code="another-code", state=query["state"])
    assert again.status_code == 400 and "already used" in again.get_data(as_text=True)
    assert len(host.token_requests()) == 1
    # and the popup link too
    assert client.get(flow["authorize_url"]).status_code == 400


def test_a_callback_in_another_browser_is_refused(
    app: Flask,
    api: AdminApi,
    other_api: AdminApi,
    client: FlaskClient,
    host: OAuthHost,
    configured: OAuthSettings,
) -> None:
    """Tenant A's admin started the flow; tenant B's browser (with its own sign-in cookie)
    comes back with A's state: refused, no code exchanged, no token kept for anyone."""
    flow_a = start(api, host)
    _, query_a = launch(client, flow_a)
    browser_b = app.test_client()
    flow_b = start(other_api, host)
    launch(browser_b, flow_b)
    page = back(browser_b, code=CODE, state=query_a["state"])
    assert page.status_code == 400
    assert "started in another browser" in page.get_data(as_text=True)
    assert host.token_requests() == [] and stored_tokens(app) == []
    status = flow_status(api, flow_a["id"]).get_json()
    assert status["status"] == "failed" and "another browser" in status["error"]
    # a browser with no cookie at all
    flow_c = start(api, host)
    _, query_c = launch(app.test_client(), flow_c)
    assert back(app.test_client(), code=CODE, state=query_c["state"]).status_code == 400
    assert host.token_requests() == [] and count(app, Integration) == 0


def test_another_tenant_or_admin_cannot_use_the_flow(
    app: Flask,
    api: AdminApi,
    other_api: AdminApi,
    client: FlaskClient,
    host: OAuthHost,
    configured: OAuthSettings,
    jira_stub: Any,
) -> None:
    flow = start(api, host)
    _, query = launch(client, flow)
    assert back(client, code=CODE, state=query["state"]).status_code == 200
    jira_stub.admins.add("acct-other-admin")
    for caller, account in ((other_api, ADMIN), (api, "acct-other-admin")):
        for method, url in (
            ("GET", f"/api/oauth/flows/{flow['id']}"),
            ("POST", f"/api/oauth/flows/{flow['id']}/validate"),
            ("POST", f"/api/oauth/flows/{flow['id']}/integration"),
            ("DELETE", f"/api/oauth/flows/{flow['id']}"),
        ):
            response = caller(method, url, {}, account=account)
            assert response.status_code == 404, (method, url, account)
            assert error_of(response)["code"] == "oauth_flow_not_found"
    assert count(app, Integration) == 0
    assert flow_status(api, flow["id"]).get_json()["status"] == "authorized"  # still the owner's


def test_the_admin_denying_access_is_explained(
    app: Flask, api: AdminApi, client: FlaskClient, host: OAuthHost, configured: OAuthSettings
) -> None:
    flow = start(api, host)
    _, query = launch(client, flow)
    page = back(
        client,
        error="access_denied",
        error_description="The user has denied your application access. <script>alert(1)</script>",
        state=query["state"],
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "Access was not granted on GitHub" in html
    status = flow_status(api, flow["id"]).get_json()
    assert status["status"] == "failed" and "denied your application access" in status["error"]
    assert host.token_requests() == [] and stored_tokens(app) == []
    refused = api("POST", f"/api/oauth/flows/{flow['id']}/integration", {})
    assert refused.status_code == 400 and error_of(refused)["code"] == "oauth_not_authorized"


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (Reply(200, {"error": "bad_verification_code", "error_description": f"The code {CODE} is wrong."}), "refused"),
        (Reply(400, {"error": "invalid_grant", "error_description": "expired"}), "invalid_grant"),
        (Reply(503, "down", {"Content-Type": "text/plain"}), "503"),
    ],
)
def test_a_refused_code_exchange_stores_nothing(
    app: Flask,
    api: AdminApi,
    client: FlaskClient,
    host: OAuthHost,
    configured: OAuthSettings,
    reply: Reply,
    says: str,
) -> None:
    host.token_replies = [reply] * 5
    flow = start(api, host)
    _, query = launch(client, flow)
    page = back(client, code=CODE, state=query["state"])
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and "did not issue a token" in html and says in html
    assert CODE not in html and CLIENT_SECRET not in html
    status = flow_status(api, flow["id"]).get_json()
    assert status["status"] == "failed" and CODE not in status["error"]
    assert stored_tokens(app) == [] and count(app, Integration) == 0


def test_unknown_popup_links_are_refused(client: FlaskClient) -> None:
    for url in ("/oauth/authorize", "/oauth/authorize?flow=nope", "/oauth/callback", "/oauth/callback?state=x"):
        response = client.get(url, headers={"Accept": "text/html"})
        assert response.status_code == 400 and "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
