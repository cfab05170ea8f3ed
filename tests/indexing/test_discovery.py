"""Discovery against GitLab's documented project listing (loopback stub, fixtures from
docs.gitlab.com) and a real git server; a 429 pauses only that credential."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from rq import SimpleWorker
from sqlalchemy import select

from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import ProviderId
from connect_app.indexing import webhook_sync
from connect_app.indexing.discovery import run_discovery
from connect_app.indexing.scheduler import dispatch, start_integration
from connect_app.models import (
    DevinfoRepositoryState,
    IndexRun,
    Integration,
    IntegrationEvent,
    IntegrationStatus,
    Repository,
    RepositorySelection,
    RepositoryStatus,
    RunKind,
    RunStatus,
    utcnow,
)
from tests.hosts.doc_stub import Answer, Call, DocStub, fixture, serve_stub
from tests.indexing.scheduling_support import (
    QUEUES,
    index_jobs,
    job,
    job_ids,
    make_integration,
    make_repos,
    make_tenant,
)
from tests.support.git_fixtures import ServedRepo

GOOD, LIMITED, REVOKED = "glpat-good-token-1", "glpat-limited-token-2", "glpat-revoked-token-3"
DIASPORA, PUPPET = fixture("gitlab", "projects_simple.json")[0], fixture("gitlab", "project_puppet.json")


@pytest.fixture(scope="module")
def server() -> Iterator[DocStub]:
    with serve_stub() as s:
        yield s


class GitLab:
    """GitLab's ``GET /api/v4/projects``, answering per token."""

    def __init__(self, stub: DocStub) -> None:
        self.stub = stub
        self.projects: list[dict[str, Any]] = [DIASPORA, PUPPET]
        stub.on("GET", "/api/v4/projects", self.answer)

    def answer(self, call: Call) -> Answer:
        token = call.headers.get("private-token")
        if token == REVOKED:
            return Answer(401, {"message": "401 Unauthorized"})
        if token == LIMITED:  # GitLab's rate-limit answer: 429 with RateLimit-* and Retry-After
            reset = int(time.time()) + 3600
            return Answer(
                429,
                "Retry later",
                headers={
                    "Retry-After": "3600",
                    "RateLimit-Limit": "600",
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(reset),
                },
            )
        return Answer(body=json.dumps(self.projects))


@pytest.fixture
def gitlab(server: DocStub) -> GitLab:
    server.reset()
    return GitLab(server)


def integration_on(session: Any, stub: DocStub, *, token: str = GOOD, **kw: Any) -> Integration:
    kw.setdefault("discovered", False)
    return make_integration(session, make_tenant(session), token=token, base_url=stub.url, **kw)


def stored(session: Any, integration: Integration) -> dict[str, Repository]:
    session.expire_all()
    return {
        r.external_id: r for r in session.scalars(select(Repository).where(Repository.integration_id == integration.id))
    }


def test_all_future_adds_new_repositories_and_requests_their_first_index(app: Flask, gitlab: GitLab) -> None:
    with app.app_context():
        session = db.session()
        integration = integration_on(session, gitlab.stub)
        session.commit()
        result = run_discovery(integration.id, None)
        assert result["status"] == "done" and result["added"] == 2 and result["repositories_seen"] == 2
        repos = stored(session, integration)
        assert sorted(repos) == ["4", "6"]
        puppet = repos["6"]
        assert (puppet.name, puppet.clone_url, puppet.default_branch, puppet.namespace) == (
            "brightbox/puppet",
            "http://example.com/brightbox/puppet.git",
            "master",
            "brightbox",
        )
        (run,) = session.scalars(select(IndexRun).where(IndexRun.kind == RunKind.DISCOVER.value)).all()
        assert (run.status, run.repositories_seen, run.started_at is not None) == ("done", 2, True)
        assert sorted(index_jobs()) == sorted(f"index-{r.id}" for r in repos.values())
        assert job(f"index-{puppet.id}").args[1] == "initial"
        assert session.get(Integration, integration.id).last_discovered_at is not None  # type: ignore[union-attr]


def test_removed_repositories_are_marked_and_come_back(app: Flask, gitlab: GitLab) -> None:
    with app.app_context():
        session = db.session()
        integration = integration_on(session, gitlab.stub)
        session.commit()
        run_discovery(integration.id, None)
        gitlab.projects = [DIASPORA]
        assert run_discovery(integration.id, None)["removed"] == 1
        puppet = stored(session, integration)["6"]
        assert puppet.status == RepositoryStatus.REMOVED.value and puppet.removed_at is not None
        gitlab.projects = [DIASPORA, PUPPET]
        assert run_discovery(integration.id, None)["restored"] == 1
        puppet = stored(session, integration)["6"]
        assert puppet.removed_at is None and puppet.status != RepositoryStatus.REMOVED.value


def test_all_adds_only_at_the_first_discovery(app: Flask, gitlab: GitLab) -> None:
    with app.app_context():
        session = db.session()
        integration = integration_on(session, gitlab.stub, selection=RepositorySelection.ALL)
        session.commit()
        gitlab.projects = [DIASPORA]
        run_discovery(integration.id, None)
        gitlab.projects = [DIASPORA, PUPPET]
        assert run_discovery(integration.id, None)["added"] == 0
        assert sorted(stored(session, integration)) == ["4"]


def test_selected_only_refreshes_metadata(app: Flask, gitlab: GitLab) -> None:
    with app.app_context():
        session = db.session()
        integration = integration_on(session, gitlab.stub, selection=RepositorySelection.SELECTED)
        picked = Repository(
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            provider=integration.provider,
            external_id="6",
            name="brightbox/old-name",
            clone_url="http://example.com/brightbox/old-name.git",
        )
        session.add(picked)
        session.commit()
        result = run_discovery(integration.id, None)
        assert (result["added"], result["repositories_seen"]) == (0, 2)
        repos = stored(session, integration)
        assert list(repos) == ["6"]
        assert (repos["6"].name, repos["6"].clone_url) == (
            "brightbox/puppet",
            "http://example.com/brightbox/puppet.git",
        )
        assert index_jobs() == [f"index-{picked.id}"]  # the picked repository's first index


def test_refused_credentials_mark_the_integration(app: Flask, gitlab: GitLab) -> None:
    with app.app_context():
        session = db.session()
        integration = integration_on(session, gitlab.stub, token=REVOKED)
        session.commit()
        result = run_discovery(integration.id, None)
        assert result["status"] == RunStatus.FAILED.value
        session.expire_all()
        integration = session.get(Integration, integration.id)
        assert integration is not None and integration.status == IntegrationStatus.AUTH_FAILED.value
        assert integration.status_detail and REVOKED not in integration.status_detail
        run = session.scalars(select(IndexRun)).one()
        assert run.status == "failed" and run.error and REVOKED not in run.error
        assert stored(session, integration) == {}


def test_a_429_from_a_host_pauses_only_that_credential(app: Flask, gitlab: GitLab) -> None:
    with app.app_context():
        session = db.session()
        limited = integration_on(session, gitlab.stub, token=LIMITED, selection=RepositorySelection.SELECTED)
        fine = integration_on(session, gitlab.stub, selection=RepositorySelection.SELECTED)
        limited_ids = make_repos(session, limited, 3)
        fine_ids = make_repos(session, fine, 3)
        session.commit()
        result = run_discovery(limited.id, None)
        assert result["status"] == RunStatus.RATE_LIMITED.value
        run = session.scalars(select(IndexRun).where(IndexRun.integration_id == limited.id)).one()
        assert run.status == "rate_limited" and run.rate_limited_until is not None
        conn = redis_conn.client
        conn.delete(*conn.keys("gcj:ratebudget:*"))  # the pause discovery recorded is what counts here
        assert conn.keys("gcj:paused:*")
        dispatch()
        jobs = set(index_jobs())
        assert not jobs & {f"index-{i}" for i in limited_ids}
        assert len(jobs & {f"index-{i}" for i in fine_ids}) == 2  # max_jobs_per_credential


def test_the_host_clients_recorded_budget_alone_pauses_the_credential(app: Flask, gitlab: GitLab) -> None:
    """Even without an explicit pause (e.g. the 429 came from an index job), the budget the
    host client recorded from the 429 keeps the dispatcher off that credential."""
    with app.app_context():
        session = db.session()
        limited = integration_on(session, gitlab.stub, token=LIMITED, selection=RepositorySelection.SELECTED)
        fine = integration_on(session, gitlab.stub, selection=RepositorySelection.SELECTED)
        limited_ids = make_repos(session, limited, 2)
        fine_ids = make_repos(session, fine, 2)
        session.commit()
        run_discovery(limited.id, None)
        conn = redis_conn.client
        conn.delete(*conn.keys("gcj:paused:*"), *conn.keys("rq:*"))
        assert conn.keys("gcj:ratebudget:*")  # what the host client recorded
        dispatch()
        assert sorted(index_jobs()) == sorted(f"index-{i}" for i in fine_ids)
        assert not set(index_jobs()) & {f"index-{i}" for i in limited_ids}


def _log(session: Any, integration: Integration) -> list[tuple[str, str, str]]:
    rows = session.scalars(
        select(IntegrationEvent).where(IntegrationEvent.integration_id == integration.id).order_by(IntegrationEvent.id)
    )
    return [(e.source, e.level, e.detail.get("code")) for e in rows]


def test_repositories_that_should_have_a_webhook_get_a_webhook_job(app: Flask, gitlab: GitLab) -> None:
    with app.app_context():
        session = db.session()
        integration = integration_on(session, gitlab.stub)
        session.commit()
        run_discovery(integration.id, None)
        assert job_ids("maintenance") == [f"webhooks-{integration.id}"]
        assert job(f"webhooks-{integration.id}").func_name == "workers.repository_jobs.sync_webhooks"
        assert _log(session, integration) == [("discovery", "info", "discovery_added")]
        event = session.scalars(select(IntegrationEvent)).one()
        assert "2 new repositories found" in event.message and "brightbox/puppet" in event.message


def test_picked_repositories_get_a_webhook_job_too(app: Flask, gitlab: GitLab) -> None:
    """The wizard's picks exist before the first discovery: they are not "added" by it."""
    with app.app_context():
        session = db.session()
        integration = integration_on(session, gitlab.stub, selection=RepositorySelection.SELECTED)
        make_repos(session, integration, 1, external_id="6")
        session.commit()
        assert run_discovery(integration.id, None)["added"] == 0
        assert job_ids("maintenance") == [f"webhooks-{integration.id}"]


def test_no_webhook_job_when_nothing_would_change(app: Flask, gitlab: GitLab) -> None:
    with app.app_context():
        session = db.session()
        off = integration_on(session, gitlab.stub, selection=RepositorySelection.SELECTED)
        off.features = {"webhooks": False}
        make_repos(session, off, 1, external_id="6")
        hooked = integration_on(session, gitlab.stub, selection=RepositorySelection.SELECTED)
        make_repos(session, hooked, 1, external_id="6", webhook_id="h-1")
        session.commit()
        run_discovery(off.id, None)
        run_discovery(hooked.id, None)
        assert job_ids("maintenance") == []


def test_a_removed_repository_loses_its_webhook_and_its_jira_data(app: Flask, gitlab: GitLab) -> None:
    with app.app_context():
        session = db.session()
        integration = integration_on(session, gitlab.stub)
        session.commit()
        run_discovery(integration.id, None)
        puppet = stored(session, integration)["6"]
        puppet.webhook_id, puppet.last_indexed_at = "h-6", utcnow()
        session.add(
            DevinfoRepositoryState(
                tenant_id=integration.tenant_id, repository_id=puppet.id, integration_id=integration.id
            )
        )
        session.commit()
        redis_conn.client.flushdb()
        gitlab.projects = [DIASPORA]
        assert run_discovery(integration.id, None)["removed"] == 1
        assert sorted(job_ids("maintenance")) == sorted(
            [f"webhooks-{integration.id}", f"jira-visibility-{integration.id}"]
        )
        assert _log(session, integration)[-1] == ("discovery", "warning", "discovery_removed")
        redis_conn.client.flushdb()
        gitlab.projects = [DIASPORA, PUPPET]
        assert run_discovery(integration.id, None)["restored"] == 1
        assert _log(session, integration)[-1] == ("discovery", "info", "discovery_restored")
        assert f"jira-visibility-{integration.id}" not in job_ids("maintenance")  # Jira still holds it


def test_a_follow_up_that_fails_does_not_stop_discovery(
    app: Flask, gitlab: GitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: Any) -> bool:
        raise RuntimeError("a bug")

    monkeypatch.setattr(webhook_sync, "needs_sync", broken)
    with app.app_context():
        session = db.session()
        integration = integration_on(session, gitlab.stub)
        session.commit()
        assert run_discovery(integration.id, None)["added"] == 2
        assert len(index_jobs()) == 2


def test_plain_git_discovers_its_one_repository(app: Flask, git_repo: ServedRepo) -> None:
    from connect_app.hosts.base import AuthType, Credentials
    from connect_app.integrations import NewIntegration, create_integration

    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        integration = create_integration(
            session,
            tenant.id,
            NewIntegration(
                provider=ProviderId.GIT,
                credentials=Credentials(
                    AuthType.PASSWORD, username=git_repo.server.username, password=git_repo.server.password
                ),
                display_name="plain",
                base_url=git_repo.url,
            ),
        )
        session.commit()
        result = run_discovery(integration.id, None)
        assert (result["status"], result["added"]) == ("done", 1)
        (repo,) = stored(session, integration).values()
        assert repo.clone_url == git_repo.url


def test_start_integration_runs_discovery_then_the_first_indexes(app: Flask, gitlab: GitLab) -> None:
    with app.app_context():
        session = db.session()
        integration = integration_on(session, gitlab.stub)
        session.commit()
        assert start_integration(session, integration)
        assert job_ids("indexing") == [f"discover-{integration.id}"]
        run = session.scalars(select(IndexRun)).one()
        assert (run.kind, run.trigger, run.status) == ("discover", "initial", "queued")
        SimpleWorker(list(QUEUES), connection=redis_conn.client).work(burst=True, max_jobs=1)
        session.expire_all()
        assert session.get(IndexRun, run.id).status == "done"  # type: ignore[union-attr]
        assert len(index_jobs()) == 2
