# ruff: noqa: F811 - the fixtures imported from admin_harness / fake_github are parameters here
"""The admin API for integrations and repositories, end to end through Flask with signed
context tokens: a real git repository served on loopback (plain git), a scripted GitHub on
loopback (credentials, scopes, webhooks), GitHub's own description served by Prism, and
one run of the real scheduler and worker."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import func, select

from connect_app.extensions import db, redis_conn
from connect_app.indexing import scheduler
from connect_app.models import (
    Branch,
    Commit,
    IndexRun,
    Integration,
    IntegrationEvent,
    IntegrationStatus,
    PullRequestRecord,
    Repository,
    RepositoryStatus,
    utcnow,
)
from connect_app.runtime import runtime
from tests.support.connect import JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.web.admin_harness import (  # noqa: F401 - fixtures
    ADMIN,
    AdminApi,
    QueueCalls,
    api,
    count,
    error_of,
    no_private_hosts,
    other_api,
    queue,
    tenant_of,
)
from tests.web.fake_github import GOOD_TOKEN, NARROW_TOKEN, OTHER_TOKEN, FakeGitHub, fake_github  # noqa: F401

QUEUES = ("interactive", "webhooks", "indexing", "maintenance")


def git_body(repo: ServedRepo, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": "git",
        "base_url": repo.url,
        "auth": {"type": "password", "username": repo.server.username, "password": repo.server.password},
    }
    body.update(overrides)
    return body


def github_body(fake: FakeGitHub, token: str = GOOD_TOKEN, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"provider": "github", "base_url": fake.url, "auth": {"type": "pat", "token": token}}
    body.update(overrides)
    return body


def create_github(api: AdminApi, fake: FakeGitHub, **overrides: Any) -> dict[str, Any]:
    response = api("POST", "/api/integrations", github_body(fake, **overrides))
    assert response.status_code == 201, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


# --- access ------------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/integrations"),
    ("POST", "/api/integrations"),
    ("POST", "/api/integrations/validate"),
    ("GET", "/api/integrations/1"),
    ("PATCH", "/api/integrations/1"),
    ("DELETE", "/api/integrations/1"),
    ("POST", "/api/integrations/1/reindex"),
    ("GET", "/api/integrations/1/repositories"),
    ("POST", "/api/integrations/1/repositories"),
    ("GET", "/api/integrations/1/remote-repositories"),
    ("PATCH", "/api/repositories/1"),
    ("POST", "/api/repositories/1/reindex"),
    ("GET", "/api/index-runs"),
    ("DELETE", "/api/index-runs?status=queued"),
]


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_admin_route_refuses_a_user_who_is_not_a_jira_admin(api: AdminApi, method: str, url: str) -> None:
    response = api(method, url, {"provider": "git"}, account="acct-plain-user")
    assert response.status_code == 403
    assert error_of(response)["code"] == "admin_required"


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_admin_route_needs_a_jira_token(client: Any, installed_site: JiraSite, method: str, url: str) -> None:
    assert client.open(url, method=method).status_code == 401
    forged = installed_site.token(
        method, url, context=True, account_id=ADMIN, secret="not-the-shared-secret-of-this-site-at-all"
    )
    assert client.open(url, method=method, headers={"Authorization": f"JWT {forged}"}).status_code == 401


def test_every_route_and_method_is_in_the_openapi_document(app: Flask, client: Any) -> None:
    doc = client.get("/api/openapi.json").get_json()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in ("api_integrations", "api_runs"):
            continue
        path = rule.rule.replace("<int:", "{").replace(">", "}")
        documented = {m.upper() for m in doc["paths"][path] if m != "parameters"}
        assert rule.methods is not None
        assert rule.methods - {"HEAD", "OPTIONS"} <= documented, path
    assert "FieldError" in doc["components"]["schemas"]


# --- plain git on loopback ---------------------------------------------------------


def test_create_a_plain_git_integration(app: Flask, api: AdminApi, queue: QueueCalls, git_repo: ServedRepo) -> None:
    response = api("POST", "/api/integrations", git_body(git_repo, settings={"project_keys": ["abc", "XYZ"]}))
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert response.headers["Location"] == f"/api/integrations/{body['id']}"
    assert body["provider"] == "git" and body["display_name"] == git_repo.name
    assert body["account_name"] == git_repo.server.username
    assert body["repositories_added"] == 1 and body["repository_count"] == 1
    assert body["indexing_started"] is True and queue.started == [body["id"]]
    assert body["status"] == "indexing"  # its one repository waits for the first index
    assert body["settings"]["project_keys"] == ["ABC", "XYZ"]
    assert body["features"] == {
        "create_branch": True,
        "create_pull_request": False,  # plain git has no pull requests
        "smart_commits": True,
        "development_panel": True,
        "webhooks": False,
    }

    listed = api("GET", "/api/integrations").get_json()["integrations"]
    assert [i["id"] for i in listed] == [body["id"]]
    repos = api("GET", f"/api/integrations/{body['id']}/repositories").get_json()
    assert repos["total"] == 1
    (repo,) = repos["repositories"]
    assert (repo["name"], repo["status"], repo["enabled"], repo["default_branch"]) == (
        git_repo.name,
        "new",
        True,
        "main",
    )
    with app.app_context():
        stored = db.session().get(Integration, body["id"])
        assert stored is not None and stored.created_by == ADMIN
        assert git_repo.server.password not in stored.credentials_encrypted
    assert not any(git_repo.server.password in text for text in api.seen)


def test_wrong_password_is_a_400_about_the_credentials_and_stores_nothing(
    app: Flask, api: AdminApi, queue: QueueCalls, git_repo: ServedRepo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = git_body(git_repo, auth={"type": "password", "username": "alice", "password": "wrong-password-123"})
    response = api("POST", "/api/integrations", body)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["field"]) == ("bad_credentials", "auth")
    assert "wrong-password-123" not in response.get_data(as_text=True)
    assert "wrong-password-123" not in caplog.text
    assert count(app, Integration) == 0 and queue.started == []


def test_unreachable_server_is_a_400_naming_the_url(app: Flask, api: AdminApi, queue: QueueCalls) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    response = api(
        "POST",
        "/api/integrations",
        {"provider": "git", "base_url": f"http://127.0.0.1:{port}/x.git", "auth": {"type": "none"}},
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    error = error_of(response)
    assert error["field"] == "base_url" and error["code"] == "host_unreachable"
    assert count(app, Integration) == 0


def test_the_same_repository_twice_is_a_conflict(
    app: Flask, api: AdminApi, queue: QueueCalls, git_repo: ServedRepo
) -> None:
    assert api("POST", "/api/integrations", git_body(git_repo)).status_code == 201
    again = git_body(git_repo, base_url=git_repo.url.removesuffix(".git") + "/")  # another spelling, same repository
    response = api("POST", "/api/integrations", again)
    assert response.status_code == 409
    assert error_of(response)["code"] == "duplicate_integration"
    assert count(app, Integration) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data.git",  # cloud metadata: never
        "file:///etc/passwd",
        "ext::sh -c touch% /tmp/pwned",
        "http://user:pw@example.com/repo.git",  # credentials in the URL
        "-uhttp://example.com/x.git",
    ],
)
def test_unsafe_clone_urls_are_refused_before_any_connection(
    app: Flask, api: AdminApi, queue: QueueCalls, url: str
) -> None:
    response = api("POST", "/api/integrations", {"provider": "git", "base_url": url, "auth": {"type": "none"}})
    assert response.status_code == 400
    error = error_of(response)
    assert error["field"] == "base_url" and error["code"] == "unsafe_url", error
    assert count(app, Integration) == 0


def test_loopback_hosts_need_allow_private_hosts(
    api: AdminApi, queue: QueueCalls, git_repo: ServedRepo, fake_github: FakeGitHub, no_private_hosts: None
) -> None:
    for body in (git_body(git_repo), github_body(fake_github)):
        response = api("POST", "/api/integrations", body)
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "unsafe_url" and "ALLOW_PRIVATE_HOSTS" in error["message"]
    assert fake_github.seen == []


# --- bad input ---------------------------------------------------------------------

GIT = {"provider": "git", "base_url": "http://127.0.0.1:9/x.git", "auth": {"type": "none"}}


@pytest.mark.parametrize(
    ("body", "code", "field_path"),
    [
        ([], "invalid_field", "body"),
        ({"base_url": "http://x"}, "required", "provider"),
        ({**GIT, "provider": "svn"}, "unknown_provider", "provider"),
        ({**GIT, "provider": 7}, "invalid_field", "provider"),
        ({**GIT, "base_url": None}, "base_url_required", "base_url"),
        ({"provider": "gitlab-self-managed", "auth": {"type": "pat", "token": "t"}}, "base_url_required", "base_url"),
        ({**GIT, "base_url": "x" * 2000}, "invalid_field", "base_url"),
        ({k: v for k, v in GIT.items() if k != "auth"}, "required", "auth"),
        ({**GIT, "auth": "secret"}, "invalid_field", "auth"),
        ({**GIT, "auth": {"type": "aws"}}, "bad_auth_type", "auth.type"),
        ({**GIT, "auth": {"type": "kerberos"}}, "bad_auth_type", "auth.type"),
        ({**GIT, "auth": {"type": "pat"}}, "required", "auth.token"),
        ({**GIT, "auth": {"type": "password", "username": "a"}}, "required", "auth.password"),
        ({**GIT, "auth": {"type": "pat", "token": 12345}}, "invalid_field", "auth.token"),
        ({**GIT, "repositories": "some"}, "bad_selection", "repositories"),
        ({**GIT, "repositories": []}, "bad_selection", "repositories"),
        ({**GIT, "repositories": [{"id": 1}]}, "invalid_field", "repositories[0]"),
        ({**GIT, "display_name": "n" * 300}, "invalid_field", "display_name"),
        ({**GIT, "colour": "blue"}, "unknown_field", "colour"),
        ({**GIT, "settings": []}, "invalid_field", "settings"),
        ({**GIT, "settings": {"interval": 5}}, "unknown_field", "settings.interval"),
        ({**GIT, "settings": {"reindex_interval_minutes": "60"}}, "invalid_field", "settings.reindex_interval_minutes"),
        ({**GIT, "settings": {"reindex_interval_minutes": 1}}, "invalid_field", "settings.reindex_interval_minutes"),
        ({**GIT, "settings": {"reindex_interval_minutes": True}}, "invalid_field", "settings.reindex_interval_minutes"),
        ({**GIT, "settings": {"require_user_pat": "yes"}}, "invalid_field", "settings.require_user_pat"),
        ({**GIT, "settings": {"project_keys": "ABC"}}, "invalid_field", "settings.project_keys"),
        ({**GIT, "settings": {"project_keys": ["ABC", "abc-1"]}}, "invalid_project_key", "settings.project_keys[1]"),
        ({**GIT, "settings": {"project_keys": ["1ABC"]}}, "invalid_project_key", "settings.project_keys[0]"),
        ({**GIT, "settings": {"features": {"teleport": True}}}, "unknown_field", "settings.features.teleport"),
        (
            {**GIT, "settings": {"features": {"create_pull_request": True}}},
            "unsupported_feature",
            "settings.features.create_pull_request",
        ),
        ({**GIT, "settings": {"features": {"webhooks": True}}}, "unsupported_feature", "settings.features.webhooks"),
        ({**GIT, "settings": {"enforce_permissions": True}}, "unsupported_setting", "settings.enforce_permissions"),
        (
            {**GIT, "settings": {"branch_name_template": "${summary}"}},
            "invalid_branch_template",
            "settings.branch_name_template",
        ),
        (
            {**GIT, "settings": {"branch_name_template": "${issuekey}-${reporter}"}},
            "invalid_branch_template",
            "settings.branch_name_template",
        ),
        (
            {**GIT, "settings": {"branch_name_template": "fix ${issuekey}"}},
            "invalid_branch_template",
            "settings.branch_name_template",
        ),
        (
            {**GIT, "settings": {"branch_name_template": "${issuekey}" + "x" * 250}},
            "invalid_branch_template",
            "settings.branch_name_template",
        ),
    ],
)
def test_bad_create_bodies_are_400s_naming_the_field(
    app: Flask, api: AdminApi, queue: QueueCalls, body: Any, code: str, field_path: str
) -> None:
    response = api("POST", "/api/integrations", body)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = error_of(response)
    assert (error["code"], error["field"]) == (code, field_path), error
    assert error["message"]
    assert count(app, Integration) == 0 and queue.started == []


@pytest.mark.parametrize("data", [b"", b"{not json", b"null", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_a_400(app: Flask, api: AdminApi, data: bytes) -> None:
    response = api.raw("POST", "/api/integrations", data)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_unknown_ids_are_404s(api: AdminApi) -> None:
    for method, url in [
        ("GET", "/api/integrations/999999"),
        ("PATCH", "/api/integrations/999999"),
        ("DELETE", "/api/integrations/999999"),
        ("POST", "/api/integrations/999999/reindex"),
        ("GET", "/api/integrations/999999/repositories"),
        ("GET", "/api/integrations/99999999999999999999/repositories"),  # larger than any id column
        ("PATCH", "/api/repositories/999999"),
        ("POST", "/api/repositories/999999/reindex"),
        ("GET", "/api/integrations/abc"),
    ]:
        response = api(method, url, {"enabled": True})
        assert response.status_code == 404, (method, url)
        assert error_of(response)["code"] in ("integration_not_found", "repository_not_found", "not_found")


# --- GitHub (scripted on loopback) -------------------------------------------------


def test_github_with_a_picked_list(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = create_github(api, fake_github, repositories=["101", "acme/gadgets"], display_name="Acme GitHub")
    assert body["display_name"] == "Acme GitHub" and body["account_name"] == "octo-admin"
    assert body["repository_selection"] == "selected" and body["repositories_added"] == 2
    names = [r["name"] for r in api("GET", f"/api/integrations/{body['id']}/repositories").get_json()["repositories"]]
    assert names == ["acme/gadgets", "acme/widgets"]
    assert {token for _, _, token in fake_github.seen} == {GOOD_TOKEN}
    assert not any(GOOD_TOKEN in text for text in api.seen)
    assert GOOD_TOKEN not in caplog.text


def test_github_all_future_adds_nothing_until_discovery(
    api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    body = create_github(api, fake_github, repositories="all_future")
    assert body["repositories_added"] == 0 and body["repository_selection"] == "all_future"
    assert queue.started == [body["id"]]
    assert fake_github.requests("GET", "/user/repos") == []  # discovery lists them, not the request
    assert body["display_name"] == "GitHub (octo-admin)"


def test_picked_ids_the_host_does_not_list_are_refused(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    response = api("POST", "/api/integrations", github_body(fake_github, repositories=["101", "999", "acme/nope"]))
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["field"]) == ("unknown_repositories", "repositories")
    assert "'999'" in error["message"] and "'acme/nope'" in error["message"] and "2 picked" in error["message"]
    assert count(app, Integration) == 0 and count(app, Repository) == 0


def test_a_refused_token_is_a_400_not_a_401(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    response = api("POST", "/api/integrations", github_body(fake_github, token="ghp_WrongToken000000000000000"))
    assert response.status_code == 400  # a 401 would tell the iframe its Jira token failed
    error = error_of(response)
    assert (error["code"], error["field"]) == ("bad_credentials", "auth")
    assert "token" in error["message"].lower()
    assert "ghp_WrongToken" not in response.get_data(as_text=True)
    assert count(app, Integration) == 0


def test_a_token_without_the_needed_scopes_says_which(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    response = api("POST", "/api/integrations", github_body(fake_github, token=NARROW_TOKEN))
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["field"]) == ("missing_scopes", "auth")
    assert "repo (" in error["message"]
    assert count(app, Integration) == 0


def test_same_github_credentials_twice_conflict_but_another_token_does_not(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    first = create_github(api, fake_github)
    response = api("POST", "/api/integrations", github_body(fake_github))
    assert response.status_code == 409
    assert error_of(response)["code"] == "duplicate_integration"
    assert f"(id {first['id']})" in error_of(response)["message"]
    calls = len(fake_github.seen)
    response = api("POST", "/api/integrations", github_body(fake_github))
    assert response.status_code == 409 and len(fake_github.seen) == calls  # refused before any host call
    create_github(api, fake_github, token=OTHER_TOKEN)
    create_github(api, fake_github, namespace="acme")  # same token, another organization
    assert count(app, Integration) == 3


def test_validate_checks_credentials_live_and_lists_repositories(
    app: Flask, api: AdminApi, fake_github: FakeGitHub
) -> None:
    body = {**github_body(fake_github), "list_repositories": True, "limit": 1}
    response = api("POST", "/api/integrations/validate", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    result = response.get_json()
    assert result["account_name"] == "octo-admin" and result["truncated"] is True
    assert [r["external_id"] for r in result["repositories"]] == ["101"]
    bad = api("POST", "/api/integrations/validate", github_body(fake_github, token=NARROW_TOKEN))
    assert bad.status_code == 400 and error_of(bad)["code"] == "missing_scopes"
    assert count(app, Integration) == 0


def test_remote_repositories_marks_the_added_ones(api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub) -> None:
    created = create_github(api, fake_github, repositories=["101"])
    listed = api("GET", f"/api/integrations/{created['id']}/remote-repositories?q=GADG").get_json()
    assert [(r["name"], r["added"]) for r in listed["repositories"]] == [("acme/gadgets", False)]
    added = api("POST", f"/api/integrations/{created['id']}/repositories", {"repositories": ["102"]})
    assert added.status_code == 201 and added.get_json()["repositories_added"] == 1
    listed = api("GET", f"/api/integrations/{created['id']}/remote-repositories").get_json()
    assert all(r["added"] for r in listed["repositories"])
    unknown = api("POST", f"/api/integrations/{created['id']}/repositories", {"repositories": ["555"]})
    assert unknown.status_code == 400 and error_of(unknown)["code"] == "unknown_repositories"


# --- GitHub's own description (Prism) ----------------------------------------------


@pytest.mark.slow
def test_github_through_prism(app: Flask, api: AdminApi, queue: QueueCalls, prism_github: Any) -> None:
    body = {
        "provider": "github",
        "base_url": prism_github.base_url,
        "auth": {"type": "pat", "token": "ghp_PrismToken000000000000000000"},
        "repositories": ["1296269"],  # the id in the description's examples
    }
    response = api("POST", "/api/integrations", body)
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert created["account_name"] == "octocat" and created["repositories_added"] == 1
    (repo,) = api("GET", f"/api/integrations/{created['id']}/repositories").get_json()["repositories"]
    assert repo["name"] == "octocat/Hello-World"
    assert queue.started == [created["id"]]


# --- PATCH -------------------------------------------------------------------------


def test_patch_name_and_settings(app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub) -> None:
    created = create_github(api, fake_github, repositories=["101", "102"])
    with app.app_context():
        session = db.session()
        far = utcnow() + timedelta(days=3)
        for repo in session.scalars(select(Repository)):
            repo.next_index_at = far
        session.commit()
    patch = {
        "display_name": "Renamed",
        "settings": {
            "require_user_pat": True,
            "enforce_permissions": True,
            "project_keys": ["OPS"],
            "reindex_interval_minutes": 30,
            "features": {"create_pull_request": False, "smart_commits": False},
            "branch_name_template": "feature/${issuekey}-${summary}",
        },
    }
    response = api("PATCH", f"/api/integrations/{created['id']}", patch)
    assert response.status_code == 200, response.get_data(as_text=True)
    got = api("GET", f"/api/integrations/{created['id']}").get_json()
    assert got["display_name"] == "Renamed"
    assert got["settings"] == {
        "require_user_pat": True,
        "enforce_permissions": True,
        "project_keys": ["OPS"],
        "reindex_interval_minutes": 30,
        "features": {
            "create_branch": True,
            "create_pull_request": False,
            "smart_commits": False,
            "development_panel": True,
            "webhooks": True,
        },
        "branch_name_template": "feature/${issuekey}-${summary}",
        "smart_commits_by": "jira",
        "smart_commits_max_age_days": 14,
    }
    with app.app_context():  # a shorter interval applies now, not after the next run
        for repo in db.session().scalars(select(Repository)):
            assert repo.next_index_at is not None and repo.next_index_at <= utcnow() + timedelta(minutes=31)
    back = api("PATCH", f"/api/integrations/{created['id']}", {"settings": {"reindex_interval_minutes": None}})
    assert back.get_json()["settings"]["reindex_interval_minutes"] is None  # adaptive again
    assert back.get_json()["settings"]["project_keys"] == ["OPS"]  # untouched
    assert queue.discoveries == []  # nothing that needs the host changed
    with app.app_context():  # the integration's log names the admin who switched smart commits off
        events = db.session().scalars(select(IntegrationEvent).where(IntegrationEvent.source == "settings")).all()
        assert [(e.detail["code"], e.detail.get("by")) for e in events] == [("smart_commits_off", ADMIN)]


def test_patch_keeps_the_keys_the_webhook_setup_wrote(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    created = create_github(api, fake_github)
    with app.app_context():
        session = db.session()
        integration = session.get(Integration, created["id"])
        assert integration is not None
        integration.features = {"webhook_manual": True, "webhook_manual_reason": "no admin rights"}
        session.commit()
    api("PATCH", f"/api/integrations/{created['id']}", {"settings": {"features": {"smart_commits": False}}})
    got = api("GET", f"/api/integrations/{created['id']}").get_json()
    assert got["webhook"]["manual"] is True and got["webhook"]["manual_reason"] == "no admin rights"
    assert got["webhook"]["url"].endswith(f"/webhooks/{created['id']}/" + integration.webhook_token)
    assert got["webhook"]["secret"]  # to paste on the host by hand
    assert "secret" not in api("GET", "/api/integrations").get_json()["integrations"][0]["webhook"]
    assert got["features"]["smart_commits"] is False


def test_disable_and_enable(app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub) -> None:
    created = create_github(api, fake_github, repositories=["101"])
    url = f"/api/integrations/{created['id']}"
    off = api("PATCH", url, {"enabled": False}).get_json()
    assert (off["enabled"], off["status"]) == (False, "disabled")
    refused = api("POST", f"{url}/reindex")
    assert refused.status_code == 409 and error_of(refused)["code"] == "integration_disabled"
    on = api("PATCH", url, {"enabled": True}).get_json()
    assert on["enabled"] is True and on["discovery_queued"] is True
    assert queue.discoveries == [(created["id"], "manual", True)]


def test_replacing_credentials_validates_them_first(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    created = create_github(api, fake_github)
    url = f"/api/integrations/{created['id']}"
    with app.app_context():
        session = db.session()
        integration = session.get(Integration, created["id"])
        assert integration is not None
        integration.status = IntegrationStatus.AUTH_FAILED.value
        integration.status_detail = "GitHub refused the token (401)"
        session.commit()
        old_key = integration.credential_key
    listed = api("GET", "/api/integrations").get_json()["integrations"][0]
    assert (listed["status"], listed["status_detail"]) == ("error", "GitHub refused the token (401)")
    refused = api("POST", f"{url}/reindex")
    assert refused.status_code == 409 and error_of(refused)["code"] == "credentials_refused"

    bad = api("PATCH", url, {"auth": {"type": "pat", "token": NARROW_TOKEN}, "display_name": "not applied"})
    assert bad.status_code == 400 and error_of(bad)["code"] == "missing_scopes"
    with app.app_context():
        kept = db.session().get(Integration, created["id"])
        assert kept is not None and kept.credential_key == old_key and kept.display_name != "not applied"

    good = api("PATCH", url, {"auth": {"type": "pat", "token": OTHER_TOKEN}})
    assert good.status_code == 200, good.get_data(as_text=True)
    body = good.get_json()
    assert body["status"] != "error" and body["discovery_queued"] is True
    assert fake_github.seen[-1][2] == OTHER_TOKEN
    with app.app_context():
        fixed = db.session().get(Integration, created["id"])
        assert fixed is not None and fixed.credential_key != old_key and fixed.status == "active"
    assert not any(OTHER_TOKEN in text for text in api.seen)


def test_new_credentials_that_duplicate_another_integration_conflict(
    api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    create_github(api, fake_github)
    second = create_github(api, fake_github, token=OTHER_TOKEN)
    response = api("PATCH", f"/api/integrations/{second['id']}", {"auth": {"type": "pat", "token": GOOD_TOKEN}})
    assert response.status_code == 409 and error_of(response)["code"] == "duplicate_integration"


@pytest.mark.parametrize(
    ("patch", "code", "field_path"),
    [
        ({"base_url": "http://elsewhere"}, "immutable_field", "base_url"),
        ({"provider": "gitlab"}, "immutable_field", "provider"),
        ({"display_name": ""}, "required", "display_name"),
        ({"display_name": None}, "required", "display_name"),
        ({"enabled": "no"}, "invalid_field", "enabled"),
        ({"settings": {"project_keys": ["ok", "NOT OK"]}}, "invalid_project_key", "settings.project_keys[1]"),
        ({"auth": {"type": "password", "username": "u", "password": "p"}}, "bad_auth_type", "auth.type"),
        ({"repositories": "everything"}, "bad_selection", "repositories"),
        ({"id": 5}, "unknown_field", "id"),
        ("rename", "invalid_field", "body"),
    ],
)
def test_bad_patches_are_400s_naming_the_field(
    api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub, patch: Any, code: str, field_path: str
) -> None:
    created = create_github(api, fake_github)
    response = api("PATCH", f"/api/integrations/{created['id']}", patch)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["field"]) == (code, field_path)


def test_patch_repository_list_enables_exactly_those(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    created = create_github(api, fake_github, repositories=["101"])
    response = api("PATCH", f"/api/integrations/{created['id']}", {"repositories": ["102"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["repositories_added"], body["repositories_disabled"]) == (1, 1)
    repos = api("GET", f"/api/integrations/{created['id']}/repositories").get_json()["repositories"]
    assert {r["external_id"]: r["enabled"] for r in repos} == {"101": False, "102": True}
    everything = api("PATCH", f"/api/integrations/{created['id']}", {"repositories": "all_future"}).get_json()
    assert everything["repository_selection"] == "all_future" and everything["discovery_queued"] is True


# --- repositories ------------------------------------------------------------------


def _seed_counters(app: Flask, repository_id: int) -> None:
    with app.app_context():
        session = db.session()
        repo = session.get(Repository, repository_id)
        assert repo is not None
        now = utcnow()
        repo.commit_count = 3
        repo.status = RepositoryStatus.OK.value
        repo.last_indexed_at = now
        for name in ("main", "feature/ABC-1"):
            session.add(Branch(tenant_id=repo.tenant_id, repository_id=repo.id, name=name, head_sha="a" * 40))
        session.add(
            PullRequestRecord(
                tenant_id=repo.tenant_id,
                repository_id=repo.id,
                external_id="7",
                title="ABC-1 fix",
                state="OPEN",
                source_branch="feature/ABC-1",
                target_branch="main",
                url="https://github.com/acme/widgets/pull/7",
                updated_on_host=now,
            )
        )
        for i in range(3):
            session.add(
                Commit(
                    tenant_id=repo.tenant_id,
                    repository_id=repo.id,
                    sha=f"{i:040x}",
                    author_name="a",
                    author_email="a@example.com",
                    authored_at=now,
                    committed_at=now,
                    message=f"ABC-{i + 1}",
                )
            )
        session.commit()


def test_repositories_show_counters_and_filter(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    created = create_github(api, fake_github, repositories=["101", "102"])
    base = f"/api/integrations/{created['id']}/repositories"
    repos = {r["name"]: r for r in api("GET", base).get_json()["repositories"]}
    _seed_counters(app, repos["acme/widgets"]["id"])
    widgets = api("GET", f"{base}?q=WIDG").get_json()
    assert widgets["total"] == 1
    (row,) = widgets["repositories"]
    assert row["counters"] == {"commits": 3, "branches": 2, "pull_requests": 1}
    assert row["status"] == "ok" and row["last_indexed_at"]
    assert api("GET", f"{base}?status=new").get_json()["repositories"][0]["name"] == "acme/gadgets"
    page = api("GET", f"{base}?limit=1&offset=1").get_json()
    assert (page["total"], [r["name"] for r in page["repositories"]]) == (2, ["acme/widgets"])
    assert api("GET", f"{base}?q=101").get_json()["total"] == 1  # an exact external id
    assert api("GET", f"{base}?q=%25").get_json()["total"] == 0  # LIKE wildcards are literal

    listed = api("GET", "/api/integrations").get_json()["integrations"][0]
    assert listed["counters"] == {"commits": 3, "branches": 2, "pull_requests": 1}
    assert listed["last_indexed_at"] is not None and listed["repository_count"] == 2
    for bad, name in [
        ("status=shiny", "status"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("enabled=maybe", "enabled"),
    ]:
        response = api("GET", f"{base}?{bad}")
        assert response.status_code == 400 and error_of(response)["field"] == name


def test_patch_a_repository(app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub) -> None:
    created = create_github(api, fake_github, repositories=["101"])
    (repo,) = api("GET", f"/api/integrations/{created['id']}/repositories").get_json()["repositories"]
    url = f"/api/repositories/{repo['id']}"
    response = api("PATCH", url, {"enabled": False, "project_keys": ["abc", "ABC", "OPS_2"]})
    assert response.status_code == 200
    assert (response.get_json()["enabled"], response.get_json()["project_keys"]) == (False, ["ABC", "OPS_2"])
    refused = api("POST", f"{url}/reindex")
    assert refused.status_code == 409 and error_of(refused)["code"] == "repository_disabled"
    for bad, code, name in [
        ({"project_keys": ["AB-1"]}, "invalid_project_key", "project_keys[0]"),
        ({"project_keys": [3]}, "invalid_project_key", "project_keys[0]"),
        ({"enabled": 1}, "invalid_field", "enabled"),
        ({"name": "x"}, "unknown_field", "name"),
    ]:
        response = api("PATCH", url, bad)
        assert response.status_code == 400 and (error_of(response)["code"], error_of(response)["field"]) == (code, name)
    api("PATCH", url, {"enabled": True})
    accepted = api("POST", f"{url}/reindex")
    assert accepted.status_code == 202 and accepted.get_json()["enqueued"] == 1
    assert queue.indexed[-1] == ([repo["id"]], "manual")


def test_reindex_an_integration_requests_every_enabled_repository(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    created = create_github(api, fake_github, repositories=["101", "102"])
    repos = {
        r["name"]: r["id"]
        for r in api("GET", f"/api/integrations/{created['id']}/repositories").get_json()["repositories"]
    }
    api("PATCH", f"/api/repositories/{repos['acme/gadgets']}", {"enabled": False})
    response = api("POST", f"/api/integrations/{created['id']}/reindex")
    assert response.status_code == 202
    assert response.get_json() == {"requested": 1, "enqueued": 1, "discovery_queued": True, "note": None}
    assert queue.indexed == [([repos["acme/widgets"]], "manual")]


def test_reindex_when_redis_is_down_says_the_work_waits(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    created = create_github(api, fake_github, repositories=["101"])

    def down(*_a: Any, **_kw: Any) -> int:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(scheduler, "request_index", down)
    monkeypatch.setattr(scheduler, "request_discovery", down)
    response = api("POST", f"/api/integrations/{created['id']}/reindex")
    assert response.status_code == 202
    assert response.get_json()["enqueued"] == 0 and "Redis" in response.get_json()["note"]


# --- DELETE ------------------------------------------------------------------------


def test_disconnect_deletes_rows_webhooks_and_queued_jobs(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    created = create_github(api, fake_github, repositories=["101", "102"])
    keep = create_github(api, fake_github, token=OTHER_TOKEN, repositories=["101"])
    repos = {
        r["name"]: r["id"]
        for r in api("GET", f"/api/integrations/{created['id']}/repositories").get_json()["repositories"]
    }
    with app.app_context():
        session = db.session()
        widgets, gadgets = (
            session.get(Repository, repos["acme/widgets"]),
            session.get(Repository, repos["acme/gadgets"]),
        )
        assert widgets is not None and gadgets is not None
        widgets.webhook_id, gadgets.webhook_id = "11", "22"
        session.add(
            IndexRun(
                tenant_id=widgets.tenant_id,
                integration_id=created["id"],
                repository_id=widgets.id,
                trigger="manual",
                job_id=f"index-{widgets.id}",
            )
        )
        session.commit()
        Queue("indexing", connection=redis_conn.client).enqueue(
            "workers.jobs.index_repository", widgets.id, "manual", job_id=f"index-{widgets.id}"
        )
    fake_github.failing_hooks.add("22")

    response = api("DELETE", f"/api/integrations/{created['id']}")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["deleted"] is True and body["repositories_removed"] == 2 and body["jobs_cancelled"] == 1
    assert body["webhooks"]["deleted"] == 1
    (failed,) = body["webhooks"]["failed"]
    assert (failed["repository_name"], failed["webhook_id"]) == ("acme/gadgets", "22") and failed["error"]
    assert sorted(fake_github.requests("DELETE")) == ["/repos/acme/gadgets/hooks/22", "/repos/acme/widgets/hooks/11"]
    with app.app_context():
        session = db.session()
        assert session.get(Integration, created["id"]) is None
        assert session.scalars(select(Repository.integration_id)).all() == [keep["id"]]
        assert session.scalar(select(func.count()).select_from(IndexRun)) == 0
        assert Job.exists(f"index-{repos['acme/widgets']}", connection=redis_conn.client) is False
    assert api("GET", f"/api/integrations/{created['id']}").status_code == 404
    assert [i["id"] for i in api("GET", "/api/integrations").get_json()["integrations"]] == [keep["id"]]


def test_disconnect_reports_webhooks_it_could_not_reach(
    app: Flask, api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    created = create_github(api, fake_github, repositories=["101"])
    with app.app_context():
        session = db.session()
        repo = session.scalars(select(Repository)).one()
        repo.webhook_id = "33"
        session.commit()
    fake_github.server.stop()  # the host is gone: the integration still goes
    body = api("DELETE", f"/api/integrations/{created['id']}").get_json()
    assert body["deleted"] is True and body["webhooks"]["deleted"] == 0
    assert body["webhooks"]["failed"][0]["webhook_id"] == "33"
    assert count(app, Integration) == 0


def test_disconnect_plain_git(app: Flask, api: AdminApi, queue: QueueCalls, git_repo: ServedRepo) -> None:
    created = api("POST", "/api/integrations", git_body(git_repo)).get_json()
    body = api("DELETE", f"/api/integrations/{created['id']}").get_json()
    assert body == {
        "id": created["id"],
        "deleted": True,
        "repositories_removed": 1,
        "jobs_cancelled": 0,
        "webhooks": {"deleted": 0, "failed": []},
    }
    assert count(app, Repository) == 0


# --- tenant isolation --------------------------------------------------------------


def test_another_tenant_never_sees_or_changes_these_rows(
    app: Flask, api: AdminApi, other_api: AdminApi, queue: QueueCalls, fake_github: FakeGitHub
) -> None:
    created = create_github(api, fake_github, repositories=["101"])
    (repo,) = api("GET", f"/api/integrations/{created['id']}/repositories").get_json()["repositories"]
    with app.app_context():
        session = db.session()
        session.add(
            IndexRun(
                tenant_id=tenant_of(app, api.site),
                integration_id=created["id"],
                repository_id=repo["id"],
                trigger="manual",
            )
        )
        session.commit()
    iid, rid = created["id"], repo["id"]

    assert other_api("GET", "/api/integrations").get_json() == {"integrations": []}
    assert other_api("GET", "/api/index-runs").get_json()["runs"] == []
    for method, url, body in [
        ("GET", f"/api/integrations/{iid}", None),
        ("PATCH", f"/api/integrations/{iid}", {"display_name": "mine now"}),
        ("DELETE", f"/api/integrations/{iid}", None),
        ("POST", f"/api/integrations/{iid}/reindex", None),
        ("GET", f"/api/integrations/{iid}/repositories", None),
        ("POST", f"/api/integrations/{iid}/repositories", {"repositories": ["102"]}),
        ("GET", f"/api/integrations/{iid}/remote-repositories", None),
        ("PATCH", f"/api/repositories/{rid}", {"enabled": False}),
        ("POST", f"/api/repositories/{rid}/reindex", None),
        ("GET", f"/api/index-runs?integration={iid}", None),
        ("GET", f"/api/index-runs?repository={rid}", None),
        ("DELETE", f"/api/index-runs?status=queued&integration={iid}", None),
    ]:
        response = other_api(method, url, body)
        assert response.status_code == 404, (method, url, response.status_code)
    assert other_api("DELETE", "/api/index-runs?status=queued").get_json()["cancelled"] == 0

    # the other tenant may connect the same repositories with the same token: no conflict across tenants
    assert other_api("POST", "/api/integrations", github_body(fake_github)).status_code == 201
    mine = api("GET", f"/api/integrations/{iid}").get_json()
    assert mine["display_name"] == created["display_name"] and mine["repository_count"] == 1
    assert api("GET", "/api/index-runs").get_json()["runs"][0]["status"] == "queued"
    assert queue.indexed == []


# --- the real scheduler and worker -------------------------------------------------


def test_plain_git_end_to_end_with_the_real_scheduler(app: Flask, api: AdminApi, git_repo: ServedRepo) -> None:
    """No recording: POST starts discovery through connect_app.indexing.scheduler, a worker
    runs discovery and the initial index, and the API shows the result."""
    if not hasattr(scheduler, "start_integration") or not hasattr(scheduler, "request_index"):
        pytest.skip("connect_app.indexing.scheduler has no start_integration/request_index yet")
    shutil.rmtree(runtime(app).settings.mirrors_dir, ignore_errors=True)  # SQLite reuses ids
    response = api("POST", "/api/integrations", git_body(git_repo))
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert created["indexing_started"] is True

    queued = api("GET", "/api/index-runs").get_json()["runs"]
    assert [(r["kind"], r["trigger"], r["status"]) for r in queued] == [("discover", "initial", "queued")]
    with app.app_context():
        SimpleWorker(list(QUEUES), connection=redis_conn.client).work(burst=True)

    runs = api("GET", f"/api/index-runs?integration={created['id']}").get_json()["runs"]
    assert [(r["kind"], r["trigger"], r["status"]) for r in runs] == [
        ("index", "initial", "done"),
        ("discover", "initial", "done"),
    ], json.dumps(runs, indent=1)
    index_run = runs[0]
    assert index_run["duration_ms"] is not None and index_run["delay_ms"] is not None
    assert index_run["counts"]["commits_seen"] >= 6 and index_run["repository_name"] == git_repo.name
    (repo,) = api("GET", f"/api/integrations/{created['id']}/repositories").get_json()["repositories"]
    assert repo["status"] == "ok" and repo["counters"]["commits"] >= 6 and repo["counters"]["branches"] >= 2
    listed = api("GET", "/api/integrations").get_json()["integrations"][0]
    assert listed["status"] == "indexed" and listed["last_indexed_at"] is not None
    hint = api("GET", f"/api/integrations/{created['id']}").get_json()["reindex_interval_hint"]
    assert hint["recommended_minutes"] == 15 and hint["based_on_runs"] == 1

    again = api("POST", f"/api/integrations/{created['id']}/reindex")
    assert again.status_code == 202 and again.get_json()["enqueued"] == 1
    manual = api("GET", "/api/index-runs?trigger=manual").get_json()["runs"]
    assert sorted((r["kind"], r["status"]) for r in manual) == [("discover", "queued"), ("index", "queued")]
