"""Requests from Jira: algorithm pinned, qsh checked per route kind, tenant bound."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest

from tests.support.connect import Jira, JiraSite


def _html_get(client, url: str, token: str):
    sep = "&" if "?" in url else "?"
    return client.get(f"{url}{sep}jwt={token}")


def test_module_url_with_real_qsh_renders(jira: Jira, installed_site: JiraSite) -> None:
    response = jira.get_page(installed_site, "/panel/issue?issueKey=ABC-12&projectKey=ABC")
    assert response.status_code == 200
    assert "ABC-12" in response.get_data(as_text=True)


def test_token_in_authorization_header_works_too(client, installed_site: JiraSite) -> None:
    token = installed_site.token("GET", "/user/settings")
    assert client.get("/user/settings", headers={"Authorization": f"JWT {token}"}).status_code == 200


def test_missing_token(client, installed_site: JiraSite) -> None:
    response = client.get("/user/settings")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "jwt_missing"


def test_alg_none_never_authenticates(client, installed_site: JiraSite) -> None:
    claims = {"iss": installed_site.client_key, "exp": int(time.time()) + 60, "qsh": "context-qsh", "sub": "a"}
    token = pyjwt.encode(claims, key=None, algorithm="none")
    assert client.get("/api/me", headers={"Authorization": f"JWT {token}"}).status_code == 401


def test_expired_token(jira: Jira, installed_site: JiraSite) -> None:
    response = jira.get_page(installed_site, "/user/settings", now=time.time() - 3600)
    assert response.status_code == 401


def test_qsh_for_another_path(client, installed_site: JiraSite) -> None:
    token = installed_site.token("GET", "/admin/repositories")
    response = _html_get(client, "/user/settings", token)
    assert response.status_code == 401


def test_qsh_for_other_query_parameters(client, installed_site: JiraSite) -> None:
    token = installed_site.token("GET", "/panel/issue?issueKey=ABC-1")
    assert _html_get(client, "/panel/issue?issueKey=ABC-2", token).status_code == 401


def test_context_token_on_module_url_is_rejected(client, installed_site: JiraSite) -> None:
    token = installed_site.token("GET", "/user/settings", context=True)
    response = _html_get(client, "/user/settings", token)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "jwt_bad_qsh"


def test_module_token_on_api_route_is_rejected(client, installed_site: JiraSite) -> None:
    token = installed_site.token("GET", "/api/me")
    response = client.get("/api/me", headers={"Authorization": f"JWT {token}"})
    assert response.status_code == 401


def test_api_with_context_token(jira: Jira, installed_site: JiraSite) -> None:
    response = jira.api(installed_site, "GET", "/api/me", account_id="acct-42")
    assert response.status_code == 200
    assert response.get_json() == {"account_id": "acct-42", "jira_base_url": installed_site.base_url}


def test_tenant_a_token_signed_with_tenant_b_secret(client, installed_site: JiraSite, other_site: JiraSite) -> None:
    token = installed_site.token("GET", "/api/me", context=True, secret=other_site.shared_secret)
    assert client.get("/api/me", headers={"Authorization": f"JWT {token}"}).status_code == 401


def test_unknown_client_key(client, site: JiraSite) -> None:
    token = site.token("GET", "/api/me", context=True)
    response = client.get("/api/me", headers={"Authorization": f"JWT {token}"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unknown_tenant"


def test_garbage_tokens(client, installed_site: JiraSite) -> None:
    for token in ["", "abc", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9." * 3]:
        response = client.get("/api/me", headers={"Authorization": f"JWT {token}"})
        assert response.status_code == 401, token


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_rejected(client, installed_site: JiraSite, alg: str) -> None:
    claims = {"iss": installed_site.client_key, "exp": int(time.time()) + 60, "qsh": "context-qsh"}
    token = pyjwt.encode(claims, installed_site.shared_secret * 2, algorithm=alg)
    assert client.get("/api/me", headers={"Authorization": f"JWT {token}"}).status_code == 401


def test_admin_page_requires_jira_administer(jira: Jira, installed_site: JiraSite, jira_stub) -> None:
    response = jira.get_page(installed_site, "/admin/repositories", account_id="acct-plain-user")
    assert response.status_code == 403
    jira_stub.admins.add("acct-admin")
    assert jira.get_page(installed_site, "/admin/repositories", account_id="acct-admin").status_code == 200
    # the check asked Jira about *this user*, signed by the app
    calls = jira_stub.calls_to("/rest/api/3/permissions/check")
    assert {c.body["accountId"] for c in calls} >= {"acct-plain-user", "acct-admin"}
    assert all(c.auth_ok for c in calls)


def test_admin_check_is_cached_per_user(jira: Jira, installed_site: JiraSite, jira_stub) -> None:
    jira_stub.admins.add("acct-admin")
    for _ in range(3):
        assert jira.get_page(installed_site, "/admin/configure", account_id="acct-admin").status_code == 200
    calls = [c for c in jira_stub.calls_to("/rest/api/3/permissions/check") if c.body["accountId"] == "acct-admin"]
    assert len(calls) == 1


def test_admin_check_without_account_id(jira: Jira, installed_site: JiraSite) -> None:
    assert jira.get_page(installed_site, "/admin/welcome", account_id=None).status_code == 403


def test_create_branch_action_accepts_context_qsh(client, installed_site: JiraSite) -> None:
    token = installed_site.token("GET", "/", context=True)
    response = client.get(f"/actions/create-branch?issueKey=ABC-7&issueSummary=Fix+it&jwt={token}")
    assert response.status_code == 200
    assert "ABC-7" in response.get_data(as_text=True)


def test_html_error_page_for_browsers(client, installed_site: JiraSite) -> None:
    response = client.get("/user/settings", headers={"Accept": "text/html"})
    assert response.status_code == 401
    assert response.mimetype == "text/html"
    assert "opened from Jira" in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_pages_can_be_framed_by_jira_only(jira: Jira, installed_site: JiraSite) -> None:
    response = jira.get_page(installed_site, "/user/settings")
    assert "frame-ancestors 'self' https://*.atlassian.net" in response.headers["Content-Security-Policy"]
