# ruff: noqa: F811 - the fixtures imported from admin_harness are parameters here
"""workers.repository_jobs end to end: an admin changes something through the admin API, the
change enqueues its background jobs (never a host or Jira call in the request), an RQ worker
runs them, and the host (a scripted GitHub on loopback that also takes webhooks) and Jira (the
loopback stub) end up in line; the integration's log says what happened."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue, SimpleWorker
from sqlalchemy import select
from werkzeug.wrappers import Request, Response

from connect_app.extensions import db, redis_conn
from connect_app.indexing import followup_jobs
from connect_app.indexing.discovery import run_discovery
from connect_app.jira import followups
from connect_app.models import Repository, utcnow
from tests.jira.devinfo_data import GitData
from tests.support.jira_stub import JiraStub
from tests.web.admin_harness import AdminApi, QueueCalls, api, other_api, queue  # noqa: F401 - fixtures
from tests.web.fake_github import GOOD_TOKEN, FakeGitHub

MAINTENANCE = "maintenance"


@dataclass
class HookingGitHub(FakeGitHub):
    """FakeGitHub that also creates repository webhooks (``POST /repos/{owner}/{repo}/hooks``)."""

    refuse_hooks: set[str] = field(default_factory=set)  # full names answered 404, as GitHub does without admin
    hook_ids: Iterator[int] = field(default_factory=lambda: itertools.count(501))

    def _answer(self, request: Request, token: str | None) -> Response:
        if request.method == "POST" and request.path.endswith("/hooks") and token in self.scopes:
            full_name = request.path.removeprefix("/repos/").removesuffix("/hooks")
            if full_name in self.refuse_hooks:
                return Response(json.dumps({"message": "Not Found"}), 404, content_type="application/json")
            url = (request.get_json(silent=True) or {}).get("config", {}).get("url")
            body = {"id": next(self.hook_ids), "config": {"url": url}}
            return Response(json.dumps(body), 201, content_type="application/json")
        return super()._answer(request, token)

    def hook_calls(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.seen if "/hooks" in p]


@pytest.fixture
def github() -> Iterator[HookingGitHub]:
    fake = HookingGitHub()
    yield fake
    fake.server.stop()


@pytest.fixture(autouse=True)
def _reset_stub(jira_stub: JiraStub) -> Iterator[None]:
    jira_stub.reset_devinfo()
    yield
    jira_stub.reset_devinfo()


def create(api: AdminApi, github: HookingGitHub, **body: Any) -> dict[str, Any]:
    payload = {"provider": "github", "base_url": github.url, "auth": {"type": "pat", "token": GOOD_TOKEN}, **body}
    response = api("POST", "/api/integrations", payload)
    assert response.status_code == 201, response.get_data(as_text=True)
    created: dict[str, Any] = response.get_json()
    return created


def jobs(app: Flask) -> list[str]:
    with app.app_context():  # this app's Redis (another test may have re-pointed the process default)
        return Queue(MAINTENANCE, connection=redis_conn.client).get_job_ids()


def drain(app: Flask) -> None:
    with app.app_context():
        SimpleWorker([MAINTENANCE], connection=redis_conn.client).work(burst=True)
        db.session.remove()


def repo_ids(api: AdminApi, integration_id: int) -> dict[str, int]:
    listed = api("GET", f"/api/integrations/{integration_id}/repositories").get_json()["repositories"]
    return {r["name"]: r["id"] for r in listed}


def webhook_ids(app: Flask) -> dict[str, str | None]:
    with app.app_context():
        rows = db.session().scalars(select(Repository).order_by(Repository.name)).all()
        found = {r.name: r.webhook_id for r in rows}
        db.session.remove()
        return found


def log_codes(api: AdminApi, integration_id: int, source: str) -> list[str]:
    events = api("GET", f"/api/integrations/{integration_id}/log?source={source}").get_json()["events"]
    return [e["detail"].get("code") for e in reversed(events)]


def test_webhooks_follow_picks_additions_and_every_switch(
    app: Flask, api: AdminApi, queue: QueueCalls, github: HookingGitHub
) -> None:
    created = create(api, github, repositories=["101"])  # picked in the wizard
    iid = created["id"]
    assert github.hook_calls() == []  # nothing asked of the host within the request
    with app.app_context():
        run_discovery(iid, None)  # what start_integration's job does
        db.session.remove()
    assert jobs(app) == [f"webhooks-{iid}"]
    drain(app)
    assert github.hook_calls() == [("POST", "/repos/acme/widgets/hooks")]
    assert webhook_ids(app) == {"acme/widgets": "501"}

    added = api("POST", f"/api/integrations/{iid}/repositories", {"repositories": ["102"]})
    assert added.status_code == 201 and f"webhooks-{iid}" in jobs(app)
    drain(app)
    assert webhook_ids(app) == {"acme/gadgets": "502", "acme/widgets": "501"}

    repos = repo_ids(api, iid)
    assert api("PATCH", f"/api/repositories/{repos['acme/widgets']}", {"enabled": False}).status_code == 200
    drain(app)
    assert github.hook_calls()[-1] == ("DELETE", "/repos/acme/widgets/hooks/501")
    assert webhook_ids(app) == {"acme/gadgets": "502", "acme/widgets": None}

    off = api("PATCH", f"/api/integrations/{iid}", {"settings": {"features": {"webhooks": False}}})
    assert off.status_code == 200 and off.get_json()["note"] is None
    drain(app)
    assert webhook_ids(app) == {"acme/gadgets": None, "acme/widgets": None}

    api("PATCH", f"/api/integrations/{iid}", {"settings": {"features": {"webhooks": True}}})
    drain(app)
    assert webhook_ids(app) == {"acme/gadgets": "503", "acme/widgets": None}  # widgets is still disabled

    api("PATCH", f"/api/integrations/{iid}", {"enabled": False})
    drain(app)
    api("PATCH", f"/api/repositories/{repos['acme/widgets']}", {"enabled": True})
    drain(app)  # a disabled integration gets no webhooks, whatever its repositories
    assert webhook_ids(app) == {"acme/gadgets": None, "acme/widgets": None}
    api("PATCH", f"/api/integrations/{iid}", {"enabled": True})
    drain(app)
    assert sorted(webhook_ids(app).values()) == ["504", "505"]  # both get a new one

    assert log_codes(api, iid, "settings") == [
        "repository_disabled",
        "webhooks_off",
        "webhooks_on",
        "integration_disabled",
        "repository_enabled",
        "integration_enabled",
    ]
    hooks_log = log_codes(api, iid, "webhook")
    assert hooks_log.count("webhook_registered") == 4 and hooks_log.count("webhook_deleted") == 3


def test_a_refused_webhook_leaves_the_manual_instructions_and_a_log_line(
    app: Flask, api: AdminApi, queue: QueueCalls, github: HookingGitHub
) -> None:
    github.refuse_hooks.add("acme/widgets")
    iid = create(api, github, repositories=["101"])["id"]
    with app.app_context():
        run_discovery(iid, None)
        db.session.remove()
    drain(app)
    webhook = api("GET", f"/api/integrations/{iid}").get_json()["webhook"]
    assert webhook["manual"] is True and webhook["url"].endswith(f"/webhooks/{iid}/" + webhook["url"].rsplit("/", 1)[1])
    assert webhook["manual_reason"]
    events = api("GET", f"/api/integrations/{iid}/log?source=webhook").get_json()["events"]
    assert [(e["level"], e["detail"]["code"]) for e in events] == [("warning", "webhook_refused")]
    assert "by hand" in events[0]["message"] and GOOD_TOKEN not in json.dumps(events)


def test_the_development_panel_follows_the_switches(
    app: Flask, api: AdminApi, queue: QueueCalls, github: HookingGitHub, jira_stub: JiraStub
) -> None:
    iid = create(api, github, repositories=["101", "102"], settings={"features": {"webhooks": False}})["id"]
    repos = repo_ids(api, iid)
    client_key = api.site.client_key
    with app.app_context():
        tenant_id = db.session().get(Repository, repos["acme/widgets"]).tenant_id  # type: ignore[union-attr]
        data = GitData(tenant_id)
        for name, sha in (("acme/widgets", "a" * 40), ("acme/gadgets", "b" * 40)):
            repo = db.session().get(Repository, repos[name])
            assert repo is not None
            data.commit(repo, sha, "ABC-1 work", ["ABC-1"])
            repo.last_indexed_at = utcnow()
            db.session().commit()
            followups.sync_repository(repo.id, True)
        db.session.remove()

    def held() -> set[str]:
        with jira_stub.lock:
            return set(jira_stub.devinfo.get(client_key, {}))

    assert held() == {str(repos["acme/widgets"]), str(repos["acme/gadgets"])}
    jira_stub.calls.clear()
    api("PATCH", f"/api/repositories/{repos['acme/widgets']}", {"enabled": False})
    assert [c for c in jira_stub.calls if c.method == "DELETE"] == []  # not within the request
    drain(app)
    assert held() == {str(repos["acme/gadgets"])}

    api("PATCH", f"/api/integrations/{iid}", {"settings": {"features": {"development_panel": False}}})
    drain(app)
    assert held() == set()
    api("PATCH", f"/api/repositories/{repos['acme/widgets']}", {"enabled": True})
    api("PATCH", f"/api/integrations/{iid}", {"settings": {"features": {"development_panel": True}}})
    drain(app)  # the visibility job, then the backfills it enqueued
    assert held() == {str(repos["acme/widgets"]), str(repos["acme/gadgets"])}
    resent = [c for c in jira_stub.calls if c.method == "POST" and c.path.endswith("/bulk")]
    assert resent and all(c.body["preventTransitions"] is True for c in resent)

    api("PATCH", f"/api/integrations/{iid}", {"enabled": False})
    drain(app)
    assert held() == set()
    devinfo_log = log_codes(api, iid, "devinfo")
    assert "devinfo_repository_removed" in devinfo_log and devinfo_log.count("devinfo_integration_removed") == 2


def test_redis_down_keeps_the_change_and_says_so(
    app: Flask, api: AdminApi, queue: QueueCalls, github: HookingGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = create(api, github, repositories=["101"])["id"]

    def down(*_a: Any, **_kw: Any) -> bool:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(followup_jobs, "request", down)
    response = api("PATCH", f"/api/integrations/{iid}", {"settings": {"features": {"webhooks": False}}})
    assert response.status_code == 200 and "Redis" in response.get_json()["note"]
    assert response.get_json()["features"]["webhooks"] is False
    repo = repo_ids(api, iid)["acme/widgets"]
    assert api("PATCH", f"/api/repositories/{repo}", {"enabled": False}).status_code == 200


def test_another_tenant_cannot_set_anything_off(
    app: Flask, api: AdminApi, other_api: AdminApi, queue: QueueCalls, github: HookingGitHub
) -> None:
    iid = create(api, github, repositories=["101"])["id"]
    repo = repo_ids(api, iid)["acme/widgets"]
    with app.app_context():
        redis_conn.client.flushdb()
    assert other_api("PATCH", f"/api/repositories/{repo}", {"enabled": False}).status_code == 404
    assert other_api("PATCH", f"/api/integrations/{iid}", {"enabled": False}).status_code == 404
    assert jobs(app) == []
    assert api("GET", f"/api/integrations/{iid}/log").get_json()["events"] == []
