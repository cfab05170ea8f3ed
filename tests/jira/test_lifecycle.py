"""Signed install / uninstall (RS256) and enable / disable (HS256): the good path and
every bad input the issue lists, each of which must change nothing."""

from __future__ import annotations

import json
import time

import jwt as pyjwt
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connect_app.extensions import db
from connect_app.jira.jwt import encode_install_token
from connect_app.models import Tenant
from connect_app.runtime import runtime
from tests.support.connect import Jira, JiraSite, new_rsa_key, new_site

INSTALLED = "/lifecycle/installed"


def _tenants() -> list[Tenant]:
    return list(db.session().scalars(select(Tenant)))


def _count() -> int:
    return int(db.session().scalar(select(func.count()).select_from(Tenant)) or 0)


def _post(client: FlaskClient, path: str, body: object, token: str | None) -> object:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"JWT {token}"
    return client.post(path, data=json.dumps(body) if not isinstance(body, bytes) else body, headers=headers)


def test_signed_install_stores_tenant_with_encrypted_secret(app, jira: Jira, site: JiraSite) -> None:
    response = jira.install(site)
    assert response.status_code == 204
    with app.app_context():
        [tenant] = _tenants()
        assert tenant.client_key == site.client_key
        assert tenant.base_url == site.base_url
        assert tenant.enabled
        assert site.shared_secret not in tenant.shared_secret_encrypted
        assert runtime(app).secrets.decrypt(tenant.shared_secret_encrypted) == site.shared_secret


def test_install_key_is_fetched_once_per_kid(jira: Jira, site: JiraSite, install_key_service) -> None:
    before = install_key_service.requests.count(jira.kid)
    assert jira.install(site).status_code == 204
    assert jira.install(site).status_code == 204
    assert install_key_service.requests.count(jira.kid) - before == 1


def test_reinstall_rotates_the_shared_secret(app, jira: Jira, site: JiraSite) -> None:
    assert jira.install(site).status_code == 204
    old_secret = site.shared_secret
    site.shared_secret = "rotated-" + old_secret
    assert jira.install(site).status_code == 204
    with app.app_context():
        [tenant] = _tenants()
        assert runtime(app).secrets.decrypt(tenant.shared_secret_encrypted) == site.shared_secret
    # requests signed with the old secret no longer authenticate
    assert jira.get_page(site, "/user/settings", secret=old_secret).status_code == 401
    assert jira.get_page(site, "/user/settings").status_code == 200


def test_uninstall_removes_the_tenant(app, jira: Jira, installed_site: JiraSite, other_site: JiraSite) -> None:
    assert jira.uninstall(installed_site).status_code == 204
    with app.app_context():
        assert [t.client_key for t in _tenants()] == [other_site.client_key]
    assert jira.get_page(installed_site, "/user/settings").status_code == 401


def test_enable_and_disable_use_the_tenant_secret(app, jira: Jira, installed_site: JiraSite, client) -> None:
    body = {"clientKey": installed_site.client_key, "key": "git-connect-for-jira", "eventType": "disabled"}
    token = installed_site.token("POST", "/lifecycle/disabled", account_id=None)
    assert _post(client, "/lifecycle/disabled", body, token).status_code == 204
    with app.app_context():
        assert _tenants()[0].enabled is False
    page = jira.get_page(installed_site, "/user/settings")
    assert page.status_code == 403
    token = installed_site.token("POST", "/lifecycle/enabled", account_id=None)
    assert _post(client, "/lifecycle/enabled", body, token).status_code == 204
    with app.app_context():
        assert _tenants()[0].enabled is True


# --- bad input: a clear 4xx, nothing changed --------------------------------------------


def _assert_rejected(response, status: int, app) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    payload = response.get_json()
    assert set(payload["error"]) == {"code", "message"}
    with app.app_context():
        assert _count() == 0
    return payload


def test_install_with_alg_none_is_rejected(app, client, jira: Jira, site: JiraSite) -> None:
    claims = {"iss": site.client_key, "aud": jira.app_base_url, "exp": int(time.time()) + 60, "qsh": "x"}
    token = pyjwt.encode(claims, key=None, algorithm="none")
    _assert_rejected(_post(client, INSTALLED, site.install_body(jira.app_key), token), 401, app)


def test_install_signed_hs256_is_rejected(app, client, jira: Jira, site: JiraSite) -> None:
    token = site.token("POST", INSTALLED, account_id=None, extra_claims={"aud": jira.app_base_url})
    _assert_rejected(_post(client, INSTALLED, site.install_body(jira.app_key), token), 401, app)


def test_install_signed_with_key_of_another_kid_is_rejected(app, client, jira: Jira, site: JiraSite) -> None:
    token = encode_install_token(
        private_key=new_rsa_key(),
        kid=jira.kid,
        issuer=site.client_key,
        audience=jira.app_base_url,
        path=INSTALLED,
    )
    _assert_rejected(_post(client, INSTALLED, site.install_body(jira.app_key), token), 401, app)


def test_install_with_unknown_kid_is_rejected(app, client, jira: Jira, site: JiraSite) -> None:
    token = jira.install_token(site, INSTALLED, kid="no-such-kid")
    _assert_rejected(_post(client, INSTALLED, site.install_body(jira.app_key), token), 401, app)


def test_install_for_another_audience_is_rejected(app, client, jira: Jira, site: JiraSite) -> None:
    token = jira.install_token(site, INSTALLED, audience="https://evil.example")
    _assert_rejected(_post(client, INSTALLED, site.install_body(jira.app_key), token), 401, app)


def test_install_audience_trailing_slash_is_ignored(app, client, jira: Jira, site: JiraSite) -> None:
    token = jira.install_token(site, INSTALLED, audience=jira.app_base_url + "/")
    assert _post(client, INSTALLED, site.install_body(jira.app_key), token).status_code == 204


def test_expired_install_token_is_rejected(app, client, jira: Jira, site: JiraSite) -> None:
    token = jira.install_token(site, INSTALLED, now=time.time() - 3600)
    _assert_rejected(_post(client, INSTALLED, site.install_body(jira.app_key), token), 401, app)


def test_install_token_with_qsh_of_another_path_is_rejected(app, client, jira: Jira, site: JiraSite) -> None:
    token = jira.install_token(site, "/lifecycle/uninstalled")
    _assert_rejected(_post(client, INSTALLED, site.install_body(jira.app_key), token), 401, app)


def test_install_whose_issuer_differs_from_body_client_key(app, client, jira: Jira, site: JiraSite) -> None:
    token = jira.install_token(site, INSTALLED, issuer="someone-else")
    payload = _assert_rejected(_post(client, INSTALLED, site.install_body(jira.app_key), token), 401, app)
    assert payload["error"]["code"] == "jwt_issuer_mismatch"


def test_install_from_a_site_outside_the_allowed_patterns(app, client, jira: Jira) -> None:
    site = new_site("https://jira.evil.example")
    token = jira.install_token(site, INSTALLED)
    payload = _assert_rejected(_post(client, INSTALLED, site.install_body(jira.app_key), token), 403, app)
    assert "not allowed" in payload["error"]["message"]


def test_install_without_token_is_rejected(app, client, jira: Jira, site: JiraSite) -> None:
    _assert_rejected(_post(client, INSTALLED, site.install_body(jira.app_key), None), 401, app)


def test_install_with_malformed_json(app, client, jira: Jira, site: JiraSite) -> None:
    token = jira.install_token(site, INSTALLED)
    payload = _assert_rejected(_post(client, INSTALLED, b"{not json", token), 400, app)
    assert payload["error"]["code"] == "malformed_json"


def test_install_with_missing_fields(app, client, jira: Jira, site: JiraSite) -> None:
    token = jira.install_token(site, INSTALLED)
    body = site.install_body(jira.app_key)
    del body["sharedSecret"]
    _assert_rejected(_post(client, INSTALLED, body, token), 400, app)


def test_install_with_oversized_body(app, client, jira: Jira, site: JiraSite) -> None:
    token = jira.install_token(site, INSTALLED)
    body = site.install_body(jira.app_key, description="x" * (2 * 1024 * 1024))
    _assert_rejected(_post(client, INSTALLED, body, token), 413, app)


def test_install_for_another_app_key(app, client, jira: Jira, site: JiraSite) -> None:
    token = jira.install_token(site, INSTALLED)
    _assert_rejected(_post(client, INSTALLED, site.install_body("some-other-app"), token), 400, app)


def test_uninstall_needs_a_valid_rs256_signature(app, client, jira: Jira, installed_site: JiraSite) -> None:
    body = installed_site.install_body(jira.app_key, eventType="uninstalled")
    hs_token = installed_site.token("POST", "/lifecycle/uninstalled", account_id=None)
    assert _post(client, "/lifecycle/uninstalled", body, hs_token).status_code == 401
    with app.app_context():
        assert _count() == 1


def test_enable_with_another_tenants_secret(app, client, installed_site: JiraSite, other_site: JiraSite) -> None:
    body = {"clientKey": installed_site.client_key}
    token = installed_site.token("POST", "/lifecycle/disabled", secret=other_site.shared_secret)
    assert _post(client, "/lifecycle/disabled", body, token).status_code == 401
    with app.app_context():
        assert all(t.enabled for t in _tenants())


def test_disable_for_unknown_client_key(app, client, site: JiraSite) -> None:
    token = site.token("POST", "/lifecycle/disabled")
    response = _post(client, "/lifecycle/disabled", {"clientKey": site.client_key}, token)
    _assert_rejected(response, 401, app)


def test_uninstall_forgets_cached_permissions(app, jira: Jira, installed_site: JiraSite, jira_stub) -> None:
    from connect_app.extensions import redis_conn

    jira_stub.admins.add("acct-admin")
    assert jira.get_page(installed_site, "/admin/welcome", account_id="acct-admin").status_code == 200
    with app.app_context():
        assert list(redis_conn.client.scan_iter(match="gcj:admin:*"))
    assert jira.uninstall(installed_site).status_code == 204
    with app.app_context():
        assert not list(redis_conn.client.scan_iter(match="gcj:admin:*"))


def test_install_keeps_the_oauth_client_id_for_user_impersonation(app, jira: Jira, site: JiraSite) -> None:
    assert jira.install(site, oauthClientId="conn-client-123").status_code == 204
    with app.app_context():
        [tenant] = _tenants()
        assert tenant.oauth_client_id == "conn-client-123"
