"""Shared by the admin API tests: signed calls as a Jira admin, the scheduler's entry points
recorded instead of run, and small database helpers. Fixtures are imported by name by the
test modules that use them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from connect_app.extensions import db
from connect_app.indexing import scheduler
from connect_app.models import Integration, Tenant
from connect_app.runtime import runtime
from tests.support.connect import Jira, JiraSite
from tests.support.jira_stub import JiraStub

ADMIN = "acct-admin"


@dataclass
class AdminApi:
    jira: Jira
    site: JiraSite
    account: str | None = ADMIN
    seen: list[str] = field(default_factory=list)  # every response body, for the no-secrets checks

    def __call__(self, method: str, url: str, body: Any = None, *, account: str | None = "default") -> TestResponse:
        who = self.account if account == "default" else account
        response = self.jira.api(self.site, method, url, json_body=body, account_id=who)
        self.seen.append(response.get_data(as_text=True))
        return response

    def raw(self, method: str, url: str, data: bytes) -> TestResponse:
        token = self.site.token(method, url, context=True, account_id=self.account)
        return self.jira.client.open(
            url, method=method, data=data, headers={"Authorization": f"JWT {token}", "Content-Type": "application/json"}
        )


@pytest.fixture
def api(jira: Jira, installed_site: JiraSite, jira_stub: JiraStub) -> AdminApi:
    jira_stub.admins.add(ADMIN)
    return AdminApi(jira, installed_site)


@pytest.fixture
def other_api(jira: Jira, other_site: JiraSite, jira_stub: JiraStub) -> AdminApi:
    jira_stub.admins.add(ADMIN)
    return AdminApi(jira, other_site)


@dataclass
class QueueCalls:
    started: list[int] = field(default_factory=list)
    discoveries: list[tuple[int, str, bool]] = field(default_factory=list)
    indexed: list[tuple[list[int], str]] = field(default_factory=list)


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> QueueCalls:
    """The scheduler's entry points, recorded instead of run (the real ones: see the end-to-end test)."""
    calls = QueueCalls()

    def start(session: Any, integration: Integration) -> bool:
        session.commit()
        calls.started.append(integration.id)
        return True

    def discover(session: Any, integration: Integration, trigger: Any = "manual", *, at_front: bool = False) -> bool:
        session.commit()
        calls.discoveries.append((integration.id, str(trigger), at_front))
        return True

    def index(session: Any, repositories: Any, trigger: Any) -> int:
        session.commit()
        calls.indexed.append(([r.id for r in repositories], str(trigger)))
        return len(repositories)

    monkeypatch.setattr(scheduler, "start_integration", start)
    monkeypatch.setattr(scheduler, "request_discovery", discover)
    monkeypatch.setattr(scheduler, "request_index", index)
    return calls


@pytest.fixture
def no_private_hosts(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """ALLOW_PRIVATE_HOSTS off for this test only (the suite runs with it on for loopback hosts)."""
    rt = runtime(app)
    off = dataclasses.replace(rt, settings=rt.settings.with_overrides(allow_private_hosts=False))
    monkeypatch.setitem(app.extensions, "git_connect", off)


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        return int(db.session().scalar(select(func.count()).select_from(model)) or 0)


def tenant_of(app: Flask, site: JiraSite) -> int:
    with app.app_context():
        return int(db.session().scalars(select(Tenant.id).where(Tenant.client_key == site.client_key)).one())


def error_of(response: TestResponse) -> dict[str, Any]:
    body = response.get_json()
    assert isinstance(body, dict) and "error" in body, response.get_data(as_text=True)
    error: dict[str, Any] = body["error"]
    return error
