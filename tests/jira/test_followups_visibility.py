"""Jira's Development panel follows the switches (connect_app.jira.visibility, followups):
disabling or removing a repository, disabling the integration or switching its Development
panel off deletes the data from Jira; switching back on sends it again from the start as a
backfill. Jira is the loopback stub (tests/support/jira_stub.py), which keeps what each
tenant's Jira holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from rq import Queue, SimpleWorker
from sqlalchemy import select, update

from connect_app.extensions import db, redis_conn
from connect_app.indexing import queueing
from connect_app.jira import followups, visibility
from connect_app.jira.devinfo import repository_state
from connect_app.models import (
    DevinfoRepositoryState,
    Integration,
    IntegrationEvent,
    IntegrationStatus,
    Repository,
    RepositoryStatus,
    utcnow,
)
from tests.jira.devinfo_data import GitData, tenant_of
from tests.support.connect import JiraSite
from tests.support.jira_stub import JiraStub

BULK = "/rest/devinfo/0.10/bulk"
# what visibility logs (the push itself logs more: connect_app.jira.devinfo_events)
OUR_CODES = {"devinfo_integration_removed", "devinfo_repository_removed", "devinfo_backfill", "devinfo_remove_failed"}


@pytest.fixture(autouse=True)
def _reset_stub(jira_stub: JiraStub) -> Iterator[None]:
    jira_stub.reset_devinfo()
    yield
    jira_stub.reset_devinfo()


@pytest.fixture
def data(app: Flask, installed_site: JiraSite) -> Iterator[GitData]:
    with app.app_context():
        yield GitData(tenant_of(installed_site).id)
        db.session.remove()


def pushed_repo(data: GitData, integration: Integration, name: str, sha: str) -> Repository:
    """A repository indexed once and sent to the stub's Jira."""
    repo = data.repository(integration, name)
    data.commit(repo, sha, f"ABC-1 {name}", ["ABC-1"])
    repo.last_indexed_at = utcnow()
    data.session.commit()
    assert followups.sync_repository(repo.id, True)["status"] == "done"
    return repo


def held(stub: JiraStub, site: JiraSite) -> list[str]:
    """Repository ids the site's Jira holds data for."""
    with stub.lock:
        return sorted(stub.devinfo.get(site.client_key, {}))


def codes(data: GitData, integration: Integration) -> list[str]:
    rows = data.session.scalars(
        select(IntegrationEvent).where(
            IntegrationEvent.integration_id == integration.id, IntegrationEvent.source == "devinfo"
        )
    )
    return [e.detail["code"] for e in rows if e.detail.get("code") in OUR_CODES]


def drain() -> None:
    SimpleWorker(["maintenance"], connection=redis_conn.client).work(burst=True)


def sync_jobs() -> list[tuple[Any, ...]]:
    queue = Queue(queueing.MAINTENANCE_QUEUE, connection=redis_conn.client)
    return [tuple(j.args) for j in queue.get_jobs() if j.func_name == followups.JOB]


@pytest.mark.parametrize("how", ["disabled", "removed"])
def test_a_hidden_repository_leaves_jira_and_comes_back_as_a_backfill(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, how: str
) -> None:
    integration = data.integration()
    widgets = pushed_repo(data, integration, "widgets", "a" * 40)
    gadgets = pushed_repo(data, integration, "gadgets", "b" * 40)
    assert held(jira_stub, installed_site) == sorted([str(widgets.id), str(gadgets.id)])
    if how == "disabled":
        widgets.enabled = False
    else:
        widgets.status, widgets.removed_at = RepositoryStatus.REMOVED.value, utcnow()
    data.session.commit()
    assert visibility.needs_reconcile(data.session, integration)

    result = visibility.reconcile(data.session, integration.id)
    assert result.repositories_removed == [widgets.id]
    assert held(jira_stub, installed_site) == [str(gadgets.id)]  # only that repository, only in Jira
    [call] = [c for c in jira_stub.calls if c.method == "DELETE"]
    assert call.path.endswith(f"/rest/devinfo/0.10/repository/{widgets.id}") and call.auth_ok
    assert repository_state(data.session, widgets.id) is None
    assert codes(data, integration) == ["devinfo_repository_removed"]
    assert not visibility.needs_reconcile(data.session, integration)

    if how == "disabled":
        widgets.enabled = True
    else:
        widgets.status, widgets.removed_at = RepositoryStatus.OK.value, None
    data.session.commit()
    jira_stub.calls.clear()
    visibility.reconcile(data.session, integration.id)
    assert sync_jobs() == [(widgets.id, True)]
    drain()
    bulk = [c for c in jira_stub.calls if c.method == "POST" and c.path.endswith(BULK)]
    assert bulk and all(c.body["preventTransitions"] is True for c in bulk)  # a backfill fires nothing
    assert held(jira_stub, installed_site) == sorted([str(widgets.id), str(gadgets.id)])
    assert codes(data, integration) == ["devinfo_repository_removed", "devinfo_backfill"]


@pytest.mark.parametrize("how", ["integration_disabled", "development_panel_off"])
def test_a_hidden_integration_leaves_jira_whole_and_comes_back(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, how: str
) -> None:
    integration = data.integration()
    kept = data.integration("other")
    repos = [pushed_repo(data, integration, n, s * 40) for n, s in (("widgets", "a"), ("gadgets", "b"))]
    other = pushed_repo(data, kept, "tools", "c" * 40)
    if how == "integration_disabled":
        integration.status = IntegrationStatus.DISABLED.value
    else:
        integration.features = {**integration.features, "development_panel": False}
    data.session.commit()

    assert visibility.reconcile(data.session, integration.id).integration_removed
    [call] = [c for c in jira_stub.calls if c.method == "DELETE"]
    assert call.path.endswith("/rest/devinfo/0.10/bulkByProperties")
    assert call.query == {"integrationId": [str(integration.id)]}
    assert held(jira_stub, installed_site) == [str(other.id)]
    states = data.session.scalars(select(DevinfoRepositoryState.repository_id)).all()
    assert states == [other.id]
    event = data.session.scalars(select(IntegrationEvent).where(IntegrationEvent.integration_id == integration.id))
    assert any("Removed this integration's data" in e.message for e in event)
    jira_stub.calls.clear()
    visibility.reconcile(data.session, integration.id)  # nothing left: Jira is not called again
    assert jira_stub.calls == []

    # while hidden, a sync job (after an index run) sends nothing
    assert followups.sync_repository(repos[0].id, False)["status"] in ("skipped", "done")
    assert held(jira_stub, installed_site) == [str(other.id)]

    if how == "integration_disabled":
        integration.status = IntegrationStatus.ACTIVE.value
    else:
        integration.features = {**integration.features, "development_panel": True}
    data.session.commit()
    visibility.reconcile(data.session, integration.id)
    assert sorted(sync_jobs()) == sorted((r.id, True) for r in repos)
    drain()
    assert held(jira_stub, installed_site) == sorted(str(r.id) for r in [*repos, other])


def test_nothing_sent_means_nothing_to_delete(data: GitData, jira_stub: JiraStub) -> None:
    integration = data.integration(development_panel=False)
    repo = data.repository(integration)
    repo.last_indexed_at = utcnow()
    integration.status = IntegrationStatus.DISABLED.value
    data.session.commit()
    assert not visibility.needs_reconcile(data.session, integration)
    visibility.reconcile(data.session, integration.id)
    assert jira_stub.calls == []


def test_jira_unavailable_keeps_the_state_and_the_job_retries(
    app: Flask, data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    integration = data.integration()
    repo = pushed_repo(data, integration, "widgets", "a" * 40)
    repo.enabled = False
    data.session.commit()
    jira_stub.devinfo_status = 503
    assert visibility.request_reconcile(integration.id)
    drain()
    job = Queue("maintenance", connection=redis_conn.client).fetch_job(f"jira-visibility-{integration.id}")
    assert job is not None and job.get_status() == "scheduled"  # RQ's retry
    data.session.expire_all()
    assert repository_state(data.session, repo.id) is not None  # still to be deleted
    assert codes(data, integration) == ["devinfo_remove_failed"]
    jira_stub.devinfo_status = None
    visibility.reconcile(data.session, integration.id)
    assert held(jira_stub, installed_site) == []


def test_another_tenants_jira_is_never_touched(
    app: Flask, installed_site: JiraSite, other_site: JiraSite, jira_stub: JiraStub
) -> None:
    with app.app_context():
        mine, theirs = GitData(tenant_of(installed_site).id), GitData(tenant_of(other_site).id)
        my_integration, their_integration = mine.integration(), theirs.integration()
        pushed_repo(mine, my_integration, "widgets", "a" * 40)
        their_repo = pushed_repo(theirs, their_integration, "widgets", "a" * 40)
        my_integration.status = IntegrationStatus.DISABLED.value
        mine.session.commit()
        visibility.reconcile(mine.session, my_integration.id)
        visibility.reconcile(mine.session, their_integration.id)  # theirs is shown: nothing to do
        assert held(jira_stub, installed_site) == []
        assert held(jira_stub, other_site) == [str(their_repo.id)]
        deletes = [c for c in jira_stub.calls if c.method == "DELETE"]
        assert [c.client_key for c in deletes] == [installed_site.client_key]
        db.session.remove()


# --------------------------------------------------------------------------- after an index run


@pytest.mark.parametrize(
    ("features", "status", "expected"),
    [
        ({}, "active", True),
        ({"development_panel": False}, "active", True),  # smart commits are run by the app
        ({"smart_commits": False}, "active", True),
        ({"development_panel": False, "smart_commits": False}, "active", False),
        ({}, "disabled", False),
    ],
)
@pytest.mark.parametrize("trigger", ["webhook", "scheduled"])
def test_after_index_respects_the_switches(
    data: GitData, features: dict[str, bool], status: str, expected: bool, trigger: str
) -> None:
    integration = data.integration(**features)
    integration.status = status
    repo = data.repository(integration)
    data.session.commit()
    result = {"status": "done", "repository_id": repo.id, "commits_seen": 3}
    assert followups.after_index(result, trigger) is expected
    assert sync_jobs() == ([(repo.id, False)] if expected else [])


def test_a_sync_with_the_development_panel_off_sends_nothing_to_it(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub
) -> None:
    integration = data.integration(development_panel=False, smart_commits=False)
    repo = data.repository(integration)
    data.commit(repo, "a" * 40, "ABC-1 #comment hello", ["ABC-1"])
    assert followups.sync_repository(repo.id, False) == {
        "status": "skipped",
        "reason": "the Development panel and smart commits are switched off",
    }
    integration.features = {"development_panel": False}
    data.session.commit()
    result = followups.sync_repository(repo.id, False)
    assert result["devinfo"]["status"] == "skipped" and result["smart_commits"]["mode"] == "app"
    assert [c for c in jira_stub.calls if c.path.endswith(BULK)] == []


def test_a_repository_hidden_while_its_push_ran_is_cleaned_up(
    data: GitData, installed_site: JiraSite, jira_stub: JiraStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration = data.integration()
    repo = data.repository(integration)
    data.commit(repo, "a" * 40, "ABC-1 x", ["ABC-1"])
    real = followups.push_repository_changes

    def push_then_disable(session: Any, repository_id: int, **kw: Any) -> Any:
        result = real(session, repository_id, **kw)
        session.execute(update(Repository).where(Repository.id == repository_id).values(enabled=False))
        session.commit()
        return result

    monkeypatch.setattr(followups, "push_repository_changes", push_then_disable)
    followups.sync_repository(repo.id, True)
    queue = Queue("maintenance", connection=redis_conn.client)
    assert f"jira-visibility-{integration.id}" in queue.get_job_ids()
    drain()
    assert held(jira_stub, installed_site) == []
