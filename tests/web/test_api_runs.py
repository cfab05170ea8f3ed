# ruff: noqa: F811 - the fixtures imported from admin_harness are parameters here
"""The indexing queue viewer's API: runs newest first with delays and durations, filters,
paging, and Clear queued runs (rows and RQ jobs), tenant-scoped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import select

from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.indexing import queueing
from connect_app.integrations import NewIntegration, add_repositories, create_integration
from connect_app.models import IndexRun, Integration, Repository, RepositoryStatus, Trigger, utcnow
from connect_app.services import run_admin
from tests.web.admin_harness import (  # noqa: F401 - fixtures
    AdminApi,
    api,
    error_of,
    other_api,
    tenant_of,
)

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


@dataclass
class Seeded:
    integration_id: int
    other_integration_id: int
    repo_ids: list[int]


def seed(app: Flask, site_api: AdminApi, name: str = "acme") -> Seeded:
    """Two plain-git integrations of the site's tenant (rows only, no network), three repositories."""
    tenant_id = tenant_of(app, site_api.site)
    with app.app_context():
        session = db.session()
        ids = []
        repo_ids: list[int] = []
        for n, count in ((f"{name}-one", 2), (f"{name}-two", 1)):
            integration = create_integration(
                session,
                tenant_id,
                NewIntegration(
                    provider=ProviderId.GIT,
                    credentials=Credentials(AuthType.NONE),
                    display_name=n,
                    base_url=f"https://git.example.com/{n}.git",
                ),
            )
            remotes = [
                RemoteRepository(
                    external_id=f"{n}/{i}", name=f"team/{n}-{i}", clone_url=f"https://git.example.com/{n}-{i}.git"
                )
                for i in range(count)
            ]
            repo_ids += [r.id for r in add_repositories(session, integration, remotes)]
            ids.append(integration.id)
        session.commit()
    return Seeded(ids[0], ids[1], repo_ids)


def add_run(app: Flask, integration_id: int, repository_id: int | None, **fields: Any) -> int:
    with app.app_context():
        session = db.session()
        integration = session.get(Integration, integration_id)
        assert integration is not None
        run = IndexRun(
            tenant_id=integration.tenant_id,
            integration_id=integration_id,
            repository_id=repository_id,
            kind="index" if repository_id else "discover",
            trigger=fields.pop("trigger", "scheduled"),
            status=fields.pop("status", "done"),
            queued_at=fields.pop("queued_at", T0),
            **fields,
        )
        session.add(run)
        session.commit()
        return run.id


# --- listing -----------------------------------------------------------------------


def test_runs_newest_first_with_delay_duration_and_counts(app: Flask, api: AdminApi) -> None:
    s = seed(app, api)
    done = add_run(
        app,
        s.integration_id,
        s.repo_ids[0],
        queued_at=T0,
        started_at=T0 + timedelta(seconds=2),
        finished_at=T0 + timedelta(seconds=2, milliseconds=1500),
        commits_seen=40,
        commits_linked=12,
        branches_seen=3,
        pull_requests_seen=2,
        links_created=15,
        attempts=1,
    )
    failed = add_run(
        app,
        s.integration_id,
        s.repo_ids[1],
        status="failed",
        trigger="webhook",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1),
        error="the host answered 500",
    )
    discover = add_run(app, s.other_integration_id, None, status="done", trigger="initial", repositories_seen=4)

    response = api("GET", "/api/index-runs")
    assert response.status_code == 200
    body = response.get_json()
    assert [r["id"] for r in body["runs"]] == [discover, failed, done]
    assert body["next_before"] is None
    row = body["runs"][2]
    assert row["delay_ms"] == 2000 and row["duration_ms"] == 1500
    assert row["counts"] == {
        "commits_seen": 40,
        "commits_linked": 12,
        "branches_seen": 3,
        "pull_requests_seen": 2,
        "links_created": 15,
        "repositories_seen": 0,
    }
    assert (row["integration_name"], row["repository_name"]) == ("acme-one", "team/acme-one-0")
    assert row["queued_at"].startswith("2026-01-05T")
    assert body["runs"][1]["error"] == "the host answered 500"
    assert body["runs"][0]["kind"] == "discover" and body["runs"][0]["repository_name"] is None
    assert body["runs"][0]["counts"]["repositories_seen"] == 4


def test_runs_in_flight_show_time_so_far(app: Flask, api: AdminApi) -> None:
    s = seed(app, api)
    now = utcnow()
    add_run(app, s.integration_id, s.repo_ids[0], status="queued", queued_at=now - timedelta(seconds=30))
    add_run(
        app,
        s.integration_id,
        s.repo_ids[1],
        status="running",
        queued_at=now - timedelta(seconds=70),
        started_at=now - timedelta(seconds=60),
    )
    running, queued = api("GET", "/api/index-runs").get_json()["runs"]
    assert 30_000 <= queued["delay_ms"] < 90_000 and queued["duration_ms"] is None
    assert running["delay_ms"] == 10_000 and 60_000 <= running["duration_ms"] < 120_000


def test_filters(app: Flask, api: AdminApi) -> None:
    s = seed(app, api)
    a = add_run(app, s.integration_id, s.repo_ids[0], status="done", trigger="manual")
    b = add_run(app, s.integration_id, s.repo_ids[1], status="failed", trigger="webhook")
    c = add_run(app, s.other_integration_id, s.repo_ids[2], status="rate_limited", trigger="scheduled")
    d = add_run(app, s.integration_id, None, status="queued", trigger="initial")

    def ids(query: str) -> list[int]:
        response = api("GET", f"/api/index-runs?{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return [r["id"] for r in response.get_json()["runs"]]

    assert ids("status=failed,rate_limited") == [c, b]
    assert ids("trigger=manual") == [a]
    assert ids("kind=discover") == [d]
    assert ids(f"integration={s.integration_id}") == [d, b, a]
    assert ids(f"repository={s.repo_ids[2]}") == [c]
    assert ids(f"integration={s.integration_id}&status=done,queued") == [d, a]


@pytest.mark.parametrize(
    ("query", "field_path"),
    [
        ("status=cancelled", "status"),
        ("trigger=cron", "trigger"),
        ("kind=gc", "kind"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("before=-1", "before"),
        ("integration=abc", "integration"),
        ("repository=1.5", "repository"),
    ],
)
def test_bad_filters_are_400s_naming_the_parameter(api: AdminApi, query: str, field_path: str) -> None:
    response = api("GET", f"/api/index-runs?{query}")
    assert response.status_code == 400
    assert error_of(response)["field"] == field_path


def test_unknown_integration_or_repository_filters_are_404s(api: AdminApi) -> None:
    assert api("GET", "/api/index-runs?integration=424242").status_code == 404
    assert api("GET", "/api/index-runs?repository=424242").status_code == 404


def test_paging_with_before(app: Flask, api: AdminApi) -> None:
    s = seed(app, api)
    made = [add_run(app, s.integration_id, s.repo_ids[0]) for _ in range(5)]
    first = api("GET", "/api/index-runs?limit=2").get_json()
    assert [r["id"] for r in first["runs"]] == [made[4], made[3]]
    second = api("GET", f"/api/index-runs?limit=2&before={first['next_before']}").get_json()
    assert [r["id"] for r in second["runs"]] == [made[2], made[1]]
    last = api("GET", f"/api/index-runs?limit=2&before={second['next_before']}").get_json()
    assert [r["id"] for r in last["runs"]] == [made[0]] and last["next_before"] is None


# --- Clear queued runs -------------------------------------------------------------


def _enqueue(job_id: str, *args: Any) -> Job:
    return Queue("indexing", connection=redis_conn.client).enqueue(
        "workers.jobs.index_repository", *args, job_id=job_id
    )


def test_clear_queued_runs(app: Flask, api: AdminApi, other_api: AdminApi) -> None:
    s = seed(app, api)
    mine_other = seed(app, other_api, "other")
    r0, r1, r2 = s.repo_ids
    waiting = add_run(app, s.integration_id, r0, status="queued", job_id=f"index-{r0}")
    taken = add_run(app, s.integration_id, r1, status="queued", job_id=f"index-{r1}")
    jobless = add_run(app, s.other_integration_id, r2, status="queued", job_id=f"index-{r2}")
    discovery = add_run(app, s.integration_id, None, status="queued", job_id=f"discover-{s.integration_id}")
    running = add_run(app, s.integration_id, r0, status="running", started_at=utcnow())
    foreign = add_run(app, mine_other.integration_id, mine_other.repo_ids[0], status="queued")
    with app.app_context():
        session = db.session()
        for rid in (r0, r1, r2):
            repo = session.get(Repository, rid)
            assert repo is not None
            repo.status = RepositoryStatus.QUEUED.value
            repo.reindex_requested_at = utcnow()
        session.get(Repository, r2).last_indexed_at = utcnow()  # type: ignore[union-attr]
        session.commit()
        _enqueue(f"index-{r0}", r0, "manual", waiting)
        _enqueue(f"index-{r1}", r1, "manual", taken).set_status(JobStatus.STARTED)
        _enqueue(f"discover-{s.integration_id}", s.integration_id, discovery)
        queueing.remember_requests(redis_conn.client, [r0], Trigger.MANUAL)

    response = api("DELETE", "/api/index-runs?status=queued")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"cancelled": 3, "jobs_cancelled": 2, "already_started": 1}

    with app.app_context():
        session = db.session()
        status = {run.id: run for run in session.scalars(select(IndexRun))}
        for cleared in (waiting, jobless, discovery):
            assert status[cleared].status == "failed" and status[cleared].error == run_admin.CANCELLED_MESSAGE
            assert status[cleared].finished_at is not None
        assert status[taken].status == "queued"  # a worker has it: it runs
        assert status[running].status == "running"
        assert status[foreign].status == "queued"  # another tenant's
        repos = {r.id: r for r in session.scalars(select(Repository))}
        assert (repos[r0].status, repos[r0].reindex_requested_at) == ("new", None)  # never indexed
        assert repos[r2].status == "ok"
        assert repos[r1].status == "queued"
        conn = redis_conn.client
        assert not Job.exists(f"index-{r0}", connection=conn)
        assert not Job.exists(f"discover-{s.integration_id}", connection=conn)
        assert Job.exists(f"index-{r1}", connection=conn)
        assert queueing.requested_triggers(conn, [r0]) == {}
        assert Queue("indexing", connection=conn).get_job_ids() == [f"index-{r1}"]
    listed = api("GET", "/api/index-runs?status=queued").get_json()["runs"]
    assert [r["id"] for r in listed] == [taken]


def test_clear_queued_runs_of_one_integration(app: Flask, api: AdminApi) -> None:
    s = seed(app, api)
    one = add_run(app, s.integration_id, s.repo_ids[0], status="queued")
    two = add_run(app, s.other_integration_id, s.repo_ids[2], status="queued")
    body = api("DELETE", f"/api/index-runs?status=queued&integration={s.integration_id}").get_json()
    assert body["cancelled"] == 1
    remaining = [r["id"] for r in api("GET", "/api/index-runs?status=queued").get_json()["runs"]]
    assert remaining == [two] and one not in remaining


@pytest.mark.parametrize("query", ["", "?status=running", "?status=done", "?status=queued,running"])
def test_clear_only_accepts_status_queued(api: AdminApi, query: str) -> None:
    response = api("DELETE", f"/api/index-runs{query}")
    assert response.status_code == 400
    assert (error_of(response)["code"], error_of(response)["field"]) == ("bad_status", "status")


def test_clear_while_the_scheduler_holds_its_lock_is_a_409(
    app: Flask, api: AdminApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = seed(app, api)
    add_run(app, s.integration_id, s.repo_ids[0], status="queued")
    monkeypatch.setattr(run_admin, "LOCK_WAIT_SECONDS", 0.1)
    with app.app_context():
        lock = redis_conn.client.lock(queueing.LOCK_KEY, timeout=30)
        assert lock.acquire()
    try:
        response = api("DELETE", "/api/index-runs?status=queued")
    finally:
        lock.release()
    assert response.status_code == 409 and error_of(response)["code"] == "scheduler_busy"
    assert api("GET", "/api/index-runs?status=queued").get_json()["runs"]  # untouched


def test_clear_with_redis_down_still_clears_the_rows(
    app: Flask, api: AdminApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = seed(app, api)
    add_run(app, s.integration_id, s.repo_ids[0], status="queued", job_id=f"index-{s.repo_ids[0]}")

    def down(*_a: Any, **_kw: Any) -> Any:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(queueing, "scheduler_lock", down)
    monkeypatch.setattr(queueing, "job_statuses", down)
    monkeypatch.setattr(queueing, "forget_request", down)
    response = api("DELETE", "/api/index-runs?status=queued")
    assert response.status_code == 200
    assert response.get_json() == {"cancelled": 1, "jobs_cancelled": 0, "already_started": 0}
