"""After an index run: the Jira sync job is enqueued (only when something changed) and
pushes the repository to the Development panel (Jira played by the loopback stub)."""

from __future__ import annotations

import pytest
from flask import Flask
from rq import SimpleWorker
from sqlalchemy import select

from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId
from connect_app.hosts.plain_git import PlainGitHost
from connect_app.indexing.scheduler import request_index
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.jira.followups import needs_sync
from connect_app.models import RepositorySelection, Tenant, Trigger
from tests.support.connect import JiraSite
from tests.support.git_fixtures import ServedRepo
from tests.support.jira_stub import JiraStub
from workers.queues import ALL_QUEUES


@pytest.mark.parametrize(
    ("result", "trigger", "expected"),
    [
        ({"status": "done"}, "initial", True),
        ({"status": "done", "commits_seen": 0, "pull_requests_seen": 0, "links_created": 0}, "scheduled", False),
        ({"status": "done", "commits_seen": 2}, "webhook", True),
        ({"status": "done", "links_created": 1}, "scheduled", True),
        ({"status": "failed", "commits_seen": 5}, "scheduled", False),
        ({"status": "skipped"}, "initial", False),
    ],
)
def test_only_runs_that_found_something_sync(result: dict[str, object], trigger: str, expected: bool) -> None:
    assert needs_sync(result, trigger) is expected


def _drain(app: Flask) -> None:
    with app.app_context():
        SimpleWorker([q.value for q in ALL_QUEUES], connection=redis_conn.client).work(burst=True)
        db.session.remove()


def test_an_initial_index_reaches_the_development_panel(
    app: Flask, installed_site: JiraSite, git_repo: ServedRepo, jira_stub: JiraStub
) -> None:
    jira_stub.reset_devinfo()
    with app.app_context():
        session = db.session()
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.client_key == installed_site.client_key))
        assert tenant_id is not None
        creds = Credentials(AuthType.PASSWORD, username=git_repo.server.username, password=git_repo.server.password)
        integration = create_integration(
            session,
            tenant_id,
            NewIntegration(
                provider=ProviderId.GIT,
                credentials=creds,
                display_name="app",
                base_url=git_repo.url,
                repository_selection=RepositorySelection.SELECTED,
            ),
        )
        remotes = list(PlainGitHost(git_repo.url, creds, allow_private=True).list_repositories())
        repos = add_repositories(session, integration, remotes)
        session.commit()
        request_index(session, repos, Trigger.INITIAL)
    _drain(app)  # the index job, then the Jira sync job it enqueued
    bulk = [c for c in jira_stub.calls if c.method == "POST" and c.path.endswith("/rest/devinfo/0.10/bulk")]
    assert bulk and all(c.auth_ok and c.client_key == installed_site.client_key for c in bulk)
    sent = [e for c in bulk for r in c.body["repositories"] for e in r.get("commits", [])]
    assert any("ABC-12" in e["issueKeys"] for e in sent)
    assert all(c.body.get("preventTransitions") is True for c in bulk)  # a backfill never transitions


def test_deleting_an_integration_removes_its_data_from_jira(
    app: Flask, installed_site: JiraSite, git_repo: ServedRepo, jira_stub: JiraStub
) -> None:
    from connect_app.services.integration_admin import delete_integration

    with app.app_context():
        session = db.session()
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.client_key == installed_site.client_key))
        assert tenant_id is not None
        integration = create_integration(
            session,
            tenant_id,
            NewIntegration(
                provider=ProviderId.GIT,
                credentials=Credentials(AuthType.NONE),
                display_name="app",
                base_url=git_repo.url,
                repository_selection=RepositorySelection.SELECTED,
            ),
        )
        session.commit()
        integration_id = integration.id
        delete_integration(session, integration, allow_private=True)
    jira_stub.calls.clear()
    _drain(app)
    [call] = [c for c in jira_stub.calls if c.method == "DELETE"]
    assert call.path.endswith("/rest/devinfo/0.10/bulkByProperties") and call.auth_ok
    assert call.query.get("integrationId") == [str(integration_id)]
