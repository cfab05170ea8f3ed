"""``/api/me/tokens`` and ``/api/me/permissions/refresh``, the user settings page, and enforced
permissions end to end through ``GET /api/issues/{key}/development``.

Hosts: GitHub served by Prism from GitHub's own description (a readable repository and one the
token cannot see, see user_token_support.py), and a GitHub stub answering GitHub's documented
401 for tokens it does not know (fake_github.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from werkzeug.test import TestResponse

from connect_app.extensions import db
from connect_app.models import IntegrationStatus, UserRepositoryPermission
from tests.support.connect import Jira, JiraSite
from tests.support.prism import PrismMock
from tests.web.development_data import DevData, tenant_id_of
from tests.web.fake_github import GOOD_TOKEN, FakeGitHub, fake_github
from tests.web.user_token_support import (
    HIDDEN_REPO,
    OPEN_REPO,
    USER_TOKEN,
    github_integration,
    github_users,
    repositories,
    token_rows,
)

__all__ = ["fake_github", "github_users"]  # fixtures used by name

ALICE = "acct-alice"
BOB = "acct-bob"


class Seen:
    """Every response body of a test, to prove a token never comes back."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def check(self, *secrets: str) -> None:
        for body in self.bodies:
            for secret in secrets:
                assert secret not in body


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def call(jira: Jira, installed_site: JiraSite, seen: Seen) -> Any:
    def call(method: str, url: str, json_body: Any = None, account_id: str | None = ALICE, site: Any = None) -> Any:
        response = jira.api(site or installed_site, method, url, json_body=json_body, account_id=account_id)
        seen.bodies.append(response.get_data(as_text=True))
        return response

    return call


@pytest.fixture
def ctx(app: Flask) -> Iterator[Any]:
    with app.app_context():
        yield db.session()


@pytest.fixture
def tenant(ctx: Any, installed_site: JiraSite) -> int:
    return tenant_id_of(installed_site)


def ok(response: TestResponse, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def error(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()["error"]
    return body


def cached_ids(ctx: Any, tenant_id: int, account_id: str) -> set[int]:
    ctx.expire_all()
    stmt = select(UserRepositoryPermission.repository_id).where(
        UserRepositoryPermission.tenant_id == tenant_id, UserRepositoryPermission.account_id == account_id
    )
    return set(ctx.scalars(stmt))


# --------------------------------------------------------------------------- tokens API


def test_list_put_test_delete(
    call: Any,
    ctx: Any,
    tenant: int,
    seen: Seen,
    fake_github: FakeGitHub,
) -> None:
    enforced = github_integration(ctx, tenant, fake_github.url, name="Acme", enforce_permissions=True)
    free = github_integration(ctx, tenant, fake_github.url, name="Zed")
    off = github_integration(ctx, tenant, fake_github.url, name="Off")
    off.status = IntegrationStatus.DISABLED.value
    ctx.commit()

    body = ok(call("GET", "/api/me/tokens"))
    assert body == {
        "tokens": [
            {
                "integration": {
                    "id": enforced.id,
                    "display_name": "Acme",
                    "provider": "github",
                    "provider_name": "GitHub",
                    "auth_types": ["pat"],
                },
                "required": True,
                "token": None,
            },
            {
                "integration": {
                    "id": free.id,
                    "display_name": "Zed",
                    "provider": "github",
                    "provider_name": "GitHub",
                    "auth_types": ["pat"],
                },
                "required": False,
                "token": None,
            },
        ]
    }

    saved = ok(call("PUT", f"/api/me/tokens/{enforced.id}", {"token": GOOD_TOKEN}))
    assert saved["integration"]["id"] == enforced.id and saved["required"] is True
    token = saved["token"]
    assert token["last4"] == GOOD_TOKEN[-4:] and token["host_account_name"] == "octo-admin"
    assert token["validated_at"] and token["invalid_reason"] is None
    assert [t["token"] is not None for t in ok(call("GET", "/api/me/tokens"))["tokens"]] == [True, False]
    assert all(t["token"] is None for t in ok(call("GET", "/api/me/tokens", account_id=BOB))["tokens"])

    tested = ok(call("POST", f"/api/me/tokens/{enforced.id}/test"))
    assert tested["ok"] is True and tested["message"] == "Acme (GitHub) accepted the token as octo-admin."
    assert tested["token"]["last4"] == GOOD_TOKEN[-4:]

    fake_github.scopes.pop(GOOD_TOKEN)  # revoked on GitHub
    tested = ok(call("POST", f"/api/me/tokens/{enforced.id}/test"))
    assert tested["ok"] is False and "Bad credentials" in tested["message"]
    assert tested["token"]["invalid_reason"] == tested["message"]

    assert call("DELETE", f"/api/me/tokens/{enforced.id}").status_code == 204
    assert call("DELETE", f"/api/me/tokens/{enforced.id}").status_code == 204  # already gone
    assert token_rows(ctx, tenant) == []
    assert error(call("POST", f"/api/me/tokens/{enforced.id}/test"), 404)["code"] == "token_not_found"
    seen.check(GOOD_TOKEN, GOOD_TOKEN[4:-4])


def test_a_refused_token_is_a_400_with_the_hosts_reason(
    call: Any,
    ctx: Any,
    tenant: int,
    seen: Seen,
    fake_github: FakeGitHub,
) -> None:
    integration = github_integration(ctx, tenant, fake_github.url, name="Acme")
    bad = "ghp_RevokedToken0123456789"
    err = error(call("PUT", f"/api/me/tokens/{integration.id}", {"token": bad}), 400)
    assert err["code"] == "token_refused"
    assert err["message"].startswith("Acme (GitHub) did not accept this token (")
    assert "Bad credentials" in err["message"] and "expired or revoked" in err["message"]
    assert token_rows(ctx, tenant) == []
    seen.check(bad)


def test_bad_bodies(call: Any, ctx: Any, tenant: int, fake_github: FakeGitHub) -> None:
    integration = github_integration(ctx, tenant, fake_github.url)
    url = f"/api/me/tokens/{integration.id}"
    assert error(call("PUT", url, {}), 400) == {"code": "required", "message": "token is required", "field": "token"}
    assert error(call("PUT", url, {"token": 12}), 400)["field"] == "token"
    assert error(call("PUT", url, {"token": "t", "scope": "x"}), 400)["code"] == "unknown_field"
    assert error(call("PUT", url, ["t"]), 400)["field"] == "body"
    assert error(call("PUT", url, {"token": "a b"}), 400)["code"] == "token_malformed"
    assert fake_github.seen == [] and token_rows(ctx, tenant) == []


def test_another_tenants_integration_is_404(
    call: Any,
    ctx: Any,
    tenant: int,
    other_site: JiraSite,
    fake_github: FakeGitHub,
) -> None:
    theirs = github_integration(ctx, tenant_id_of(other_site), fake_github.url, name="theirs")
    for method, url, body in (
        ("PUT", f"/api/me/tokens/{theirs.id}", {"token": GOOD_TOKEN}),
        ("POST", f"/api/me/tokens/{theirs.id}/test", None),
        ("DELETE", f"/api/me/tokens/{theirs.id}", None),
        ("PUT", "/api/me/tokens/99999999999", {"token": GOOD_TOKEN}),
    ):
        assert error(call(method, url, body), 404)["code"] == "integration_not_found"
    assert ok(call("GET", "/api/me/tokens"))["tokens"] == []
    assert fake_github.seen == [] and token_rows(ctx, tenant_id_of(other_site)) == []
    # and the other tenant's user can use it
    assert ok(call("PUT", f"/api/me/tokens/{theirs.id}", {"token": GOOD_TOKEN}, site=other_site))["token"]


def test_a_request_without_a_user_is_403(call: Any, client: FlaskClient) -> None:
    for method, url in (
        ("GET", "/api/me/tokens"),
        ("DELETE", "/api/me/tokens/1"),
        ("POST", "/api/me/permissions/refresh"),
    ):
        err = error(call(method, url, account_id=None), 403)
        assert err["code"] == "no_user" and "signed-in Jira user" in err["message"]
    assert error(client.get("/api/me/tokens"), 401)["code"] == "jwt_missing"


def test_openapi_describes_the_user_token_api(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    assert set(doc["paths"]["/api/me/tokens/{integration_id}"]) >= {"put", "delete", "parameters"}
    assert "post" in doc["paths"]["/api/me/tokens/{integration_id}/test"]
    assert "post" in doc["paths"]["/api/me/permissions/refresh"]
    entry = doc["components"]["schemas"]["UserTokenEntry"]
    assert set(entry["properties"]["token"]["properties"]) == {
        "last4",
        "host_account_name",
        "validated_at",
        "invalid_reason",
    }


# --------------------------------------------------------------------------- enforced permissions


def development(call: Any, account_id: str = ALICE) -> dict[str, Any]:
    body: dict[str, Any] = ok(call("GET", "/api/issues/ABC-1/development", account_id=account_id))
    return body


@pytest.mark.slow
def test_enforced_permissions_end_to_end(call: Any, ctx: Any, tenant: int, seen: Seen, github_users: PrismMock) -> None:
    integration = github_integration(ctx, tenant, github_users.base_url, name="Acme", enforce_permissions=True)
    open_repo, hidden_repo = repositories(ctx, integration, OPEN_REPO, HIDDEN_REPO)
    data = DevData(tenant)
    data.commit(open_repo, "ABC-1 readable change")
    data.commit(hidden_repo, "ABC-1 secret change")

    # no token: nothing from the integration, and a prompt to add one
    body = development(call)
    assert body["commits"] == [] and body["counts"]["commits"] == 0
    assert body["needs_token"] == [integration.id]
    assert body["needs_token_integrations"] == [{"id": integration.id, "name": "Acme", "provider": "github"}]

    with github_users.recording() as rec:
        ok(call("PUT", f"/api/me/tokens/{integration.id}", {"token": USER_TOKEN}))
        body = development(call)
    rec.assert_all_valid(min_requests=3)
    assert sorted(e.url.split("/", 3)[-1] for e in rec.exchanges if "/repos/" in e.url) == sorted(
        [f"repos/{OPEN_REPO}", f"repos/{HIDDEN_REPO}"]
    )
    assert [c["message"] for c in body["commits"]] == ["ABC-1 readable change"]
    assert body["counts"]["commits"] == 1 and body["needs_token"] == []
    assert [r["name"] for r in body["repositories"]] == [OPEN_REPO]
    assert cached_ids(ctx, tenant, ALICE) == {open_repo.id, hidden_repo.id}

    # Bob has no token: still nothing for him
    assert development(call, BOB)["needs_token"] == [integration.id]

    # within the TTL the cache answers: the host is not asked
    with github_users.recording() as rec:
        assert [c["message"] for c in development(call)["commits"]] == ["ABC-1 readable change"]
    assert rec.exchanges == []

    # "refresh" drops the cache: the next view asks the host again
    assert call("POST", "/api/me/permissions/refresh").status_code == 204
    assert cached_ids(ctx, tenant, ALICE) == set()
    with github_users.recording() as rec:
        assert [c["message"] for c in development(call)["commits"]] == ["ABC-1 readable change"]
    assert len([e for e in rec.exchanges if "/repos/" in e.url]) == 2

    # removing the token removes its cached permissions and the data
    assert call("DELETE", f"/api/me/tokens/{integration.id}").status_code == 204
    assert cached_ids(ctx, tenant, ALICE) == set()
    assert development(call)["needs_token"] == [integration.id]
    seen.check(USER_TOKEN, USER_TOKEN[4:-4])
    raw = ctx.execute(text("SELECT * FROM user_token")).all()
    assert USER_TOKEN not in repr(raw)


def test_a_token_revoked_on_the_host_asks_for_a_new_one(
    call: Any,
    ctx: Any,
    tenant: int,
    fake_github: FakeGitHub,
) -> None:
    integration = github_integration(ctx, tenant, fake_github.url, name="Acme", enforce_permissions=True)
    (repo,) = repositories(ctx, integration, "acme/widgets")
    DevData(tenant).commit(repo, "ABC-1 change")
    ok(call("PUT", f"/api/me/tokens/{integration.id}", {"token": GOOD_TOKEN}))
    fake_github.scopes.pop(GOOD_TOKEN)  # revoked: GitHub answers 401 from now on

    assert development(call)["needs_token"] == [integration.id]
    (entry,) = ok(call("GET", "/api/me/tokens"))["tokens"]
    assert "refused this token" in entry["token"]["invalid_reason"]
    assert "Bad credentials" in entry["token"]["invalid_reason"]
    asked = len(fake_github.seen)
    assert development(call)["needs_token"] == [integration.id]
    assert len(fake_github.seen) == asked  # an invalid token is not tried again


# --------------------------------------------------------------------------- the page


def initial_data(html: str) -> Any:
    start = html.index('<script type="application/json" id="gcj-initial">') + len(
        '<script type="application/json" id="gcj-initial">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def test_settings_page_embeds_the_list_without_tokens(
    jira: Jira,
    installed_site: JiraSite,
    ctx: Any,
    tenant: int,
    fake_github: FakeGitHub,
) -> None:
    integration = github_integration(ctx, tenant, fake_github.url, name="Acme", require_user_pat=True)
    ok(jira.api(installed_site, "PUT", f"/api/me/tokens/{integration.id}", json_body={"token": GOOD_TOKEN}))
    response = jira.get_page(installed_site, f"/user/settings?integration={integration.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert GOOD_TOKEN not in html and GOOD_TOKEN[4:-4] not in html
    (entry,) = initial_data(html)["tokens"]
    assert entry["token"]["last4"] == GOOD_TOKEN[-4:] and entry["required"] is True
    assert f'data-focus="{integration.id}"' in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    # Jira passes page parameters as ac.*; junk is ignored
    assert f'data-focus="{integration.id}"' in jira.get_page(
        installed_site, f"/user/settings?ac.integration={integration.id}"
    ).get_data(as_text=True)
    assert 'data-focus=""' in jira.get_page(installed_site, "/user/settings?integration=1;drop").get_data(as_text=True)


def test_settings_page_for_another_user_shows_no_token(
    jira: Jira,
    installed_site: JiraSite,
    ctx: Any,
    tenant: int,
    fake_github: FakeGitHub,
) -> None:
    integration = github_integration(ctx, tenant, fake_github.url, name="Acme")
    ok(jira.api(installed_site, "PUT", f"/api/me/tokens/{integration.id}", json_body={"token": GOOD_TOKEN}))
    html = jira.get_page(installed_site, "/user/settings", account_id=BOB).get_data(as_text=True)
    assert [e["token"] for e in initial_data(html)["tokens"]] == [None]
