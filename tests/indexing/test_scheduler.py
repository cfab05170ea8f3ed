"""Scheduling: intervals, unique jobs, requests while running, Redis outages, pauses, pruning."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.job import JobStatus
from sqlalchemy import func, select

from connect_app import log_context
from connect_app.config import Settings
from connect_app.extensions import db, redis_conn
from connect_app.indexing import queueing, sync
from connect_app.indexing.scheduler import (
    adaptive_interval,
    dispatch,
    pause_credential,
    prune_history,
    request_index,
    schedule_next,
    start_integration,
)
from connect_app.models import (
    DeliveryStatus,
    IndexRun,
    Repository,
    RepositoryStatus,
    RunKind,
    RunStatus,
    Trigger,
    WebhookDelivery,
    utcnow,
)
from tests.indexing.scheduling_support import (
    QUEUES,
    app_without_redis,
    count_queries,
    index_jobs,
    job,
    job_ids,
    make_integration,
    make_repos,
    make_tenant,
    repo,
)

M, H = timedelta(minutes=1), timedelta(hours=1)


# --- intervals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quiet", "webhook_fed", "expected"),
    [
        (timedelta(0), False, 15 * M),
        (30 * M, False, 15 * M),
        (2 * H, False, 30 * M),
        (4 * H, False, 1 * H),
        (12 * H, False, 3 * H),
        (24 * H, False, 6 * H),
        (48 * H, False, 12 * H),
        (96 * H, False, 24 * H),
        (365 * 24 * H, False, 24 * H),
        (timedelta(0), True, 6 * H),
        (24 * H, True, 6 * H),
        (48 * H, True, 12 * H),
        (30 * 24 * H, True, 24 * H),
    ],
)
def test_adaptive_interval_table(quiet: timedelta, webhook_fed: bool, expected: timedelta) -> None:
    assert adaptive_interval(quiet_for=quiet, webhook_fed=webhook_fed) == expected


def test_schedule_next_uses_the_integrations_interval_or_adapts(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        fixed = make_integration(session, tenant, interval=60)
        adaptive = make_integration(session, tenant)
        (fixed_id,) = make_repos(session, fixed, 1)
        busy_id, idle_id, hooked_id = make_repos(session, adaptive, 3)
        now = utcnow()
        r = repo(session, fixed_id)
        assert 60 * M <= schedule_next(r, fixed, now) - now <= 66 * M
        assert r.next_index_at is not None

        busy = repo(session, busy_id)
        busy.last_changed_at = now - 10 * M
        assert 15 * M <= schedule_next(busy, adaptive, now) - now <= 16.5 * M

        idle = repo(session, idle_id)
        idle.last_changed_at = now - 30 * 24 * H
        assert 24 * H <= schedule_next(idle, adaptive, now) - now <= 26.4 * H

        hooked = repo(session, hooked_id)
        hooked.last_changed_at = now - 10 * M
        assert 6 * H <= schedule_next(hooked, adaptive, now, trigger=Trigger.WEBHOOK) - now <= 6.6 * H
        hooked.webhook_id = "42"
        assert 6 * H <= schedule_next(hooked, adaptive, now) - now <= 6.6 * H


# --- request_index: unique jobs ------------------------------------------------------


@pytest.fixture
def one_repo(app: Flask) -> Iterator[tuple[Any, Repository]]:
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        integration = make_integration(session, tenant)
        (rid,) = make_repos(session, integration, 1)
        session.commit()
        yield session, repo(session, rid)


def test_two_requests_make_one_job_and_one_run(one_repo: tuple[Any, Repository]) -> None:
    session, r = one_repo
    assert request_index(session, [r], Trigger.MANUAL) == 1
    assert request_index(session, [r], Trigger.MANUAL) == 0
    assert job_ids("indexing") == [f"index-{r.id}"]
    (run,) = session.scalars(select(IndexRun)).all()
    assert (run.status, run.trigger, run.job_id, run.kind) == ("queued", "manual", f"index-{r.id}", "index")
    assert job(f"index-{r.id}").args == (r.id, "manual", run.id)
    r = repo(session, r.id)
    assert r.status == RepositoryStatus.QUEUED.value
    # the second request came after the job was queued: it stays for after this job
    assert r.reindex_requested_at is not None


def test_job_options(one_repo: tuple[Any, Repository]) -> None:
    session, r = one_repo
    request_index(session, [r], Trigger.WEBHOOK)
    j = job(f"index-{r.id}")
    assert j.origin == "webhooks"
    assert j.func_name == "workers.jobs.index_repository"
    assert (j.result_ttl, j.failure_ttl, j.timeout) == (
        queueing.JOB_RESULT_TTL,
        queueing.JOB_FAILURE_TTL,
        queueing.INDEX_JOB_TIMEOUT,
    )
    assert j.retries_left == 3 and j.retry_intervals == [30, 120, 600]


def test_a_job_carries_the_request_id_that_asked_for_it(one_repo: tuple[Any, Repository]) -> None:
    session, r = one_repo
    with log_context.bind(request_id="req-abc.1"):
        request_index(session, [r], Trigger.MANUAL)
    assert job(f"index-{r.id}").meta.get("request_id") == "req-abc.1"


class FakeResult:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def as_dict(self) -> dict[str, Any]:
        return self.data


def _finishing_engine(repository_id: int, trigger: str, run_id: int | None = None) -> FakeResult:
    """What the engine does at the end of a run that found nothing new."""
    session = db.session()
    r = session.get(Repository, repository_id)
    run = session.get(IndexRun, run_id)
    assert r is not None and run is not None
    run.status, run.started_at, run.finished_at = RunStatus.DONE.value, utcnow(), utcnow()
    r.status, r.last_indexed_at = RepositoryStatus.OK.value, utcnow()
    session.commit()
    return FakeResult({"repository_id": repository_id, "trigger": trigger})


def _work() -> None:
    SimpleWorker([q for q in QUEUES], connection=redis_conn.client).work(burst=True)


def test_a_finished_job_left_in_redis_does_not_block_the_next(
    one_repo: tuple[Any, Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, r = one_repo
    monkeypatch.setattr(sync, "run_index", _finishing_engine)
    request_index(session, [r], Trigger.MANUAL)
    _work()
    assert job(f"index-{r.id}").get_status() == JobStatus.FINISHED  # kept for result_ttl
    assert request_index(session, [repo(session, r.id)], Trigger.WEBHOOK) == 1
    assert job(f"index-{r.id}").get_status() == JobStatus.QUEUED
    assert job_ids("webhooks") == [f"index-{r.id}"]
    assert session.scalar(select(func.count()).select_from(IndexRun)) == 2


def test_a_failed_job_left_in_redis_does_not_block_the_next(
    one_repo: tuple[Any, Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, r = one_repo

    def crashing(*_a: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sync, "run_index", crashing)
    request_index(session, [r], Trigger.MANUAL)
    j = job(f"index-{r.id}")
    j.retries_left = 0  # its retries are spent
    j.save()
    _work()
    assert job(f"index-{r.id}").get_status() == JobStatus.FAILED  # kept for failure_ttl (a week)
    r = repo(session, r.id)
    r.status = RepositoryStatus.FAILED.value  # what the engine records
    session.commit()
    assert request_index(session, [r], Trigger.MANUAL) == 1
    assert job(f"index-{r.id}").get_status() == JobStatus.QUEUED


def test_a_job_waiting_for_its_retry_is_not_replaced(
    one_repo: tuple[Any, Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, r = one_repo
    monkeypatch.setattr(sync, "run_index", lambda *_a: 1 / 0)
    request_index(session, [r], Trigger.MANUAL)
    _work()
    assert job(f"index-{r.id}").get_status() == JobStatus.SCHEDULED  # Retry: again in 30 s
    r = repo(session, r.id)
    r.status = RepositoryStatus.FAILED.value
    session.commit()
    assert request_index(session, [r], Trigger.MANUAL) == 0
    assert session.scalar(select(func.count()).select_from(IndexRun)) == 1


def test_a_request_while_running_is_indexed_after_the_run(one_repo: tuple[Any, Repository]) -> None:
    session, r = one_repo
    request_index(session, [r], Trigger.MANUAL)
    r = repo(session, r.id)
    r.status = RepositoryStatus.INDEXING.value  # the job started
    session.commit()
    assert request_index(session, [r], Trigger.WEBHOOK) == 0  # a push lands mid-run
    assert repo(session, r.id).reindex_requested_at is not None
    dispatch()
    assert session.scalar(select(func.count()).select_from(IndexRun)) == 1  # still running: nothing new
    # the run ends (it started before the push: the engine leaves the request)
    redis_conn.client.delete(f"rq:job:index-{r.id}", "rq:queue:indexing")
    r = repo(session, r.id)
    r.status, r.last_indexed_at = RepositoryStatus.OK.value, utcnow()
    r.next_index_at = utcnow() + timedelta(hours=5)
    session.commit()
    assert dispatch() == 1
    assert job_ids("webhooks") == [f"index-{r.id}"]  # labelled with what asked for it
    run = session.scalars(select(IndexRun).order_by(IndexRun.id.desc())).first()
    assert run is not None and run.trigger == Trigger.WEBHOOK.value
    assert repo(session, r.id).reindex_requested_at is None


def test_redis_down_keeps_the_request_and_raises(app: Flask, settings: Settings) -> None:
    with app.app_context():
        session = db.session()
        integration = make_integration(session, make_tenant(session))
        (rid,) = make_repos(session, integration, 1)
        session.commit()
    with app_without_redis(settings) as broken, broken.app_context():
        session = db.session()
        with pytest.raises(RedisError):
            request_index(session, [repo(session, rid)], Trigger.WEBHOOK)
        db.session.remove()
    with app.app_context():
        session = db.session()
        r = repo(session, rid)
        assert r.reindex_requested_at is not None  # committed before Redis was tried
        assert r.status == RepositoryStatus.NEW.value
        assert session.scalar(select(func.count()).select_from(IndexRun)) == 0
        # Redis is back: the dispatcher picks the request up
        dispatch()
        assert index_jobs() == [f"index-{rid}"]


def test_redis_down_after_the_run_row_puts_everything_back(
    one_repo: tuple[Any, Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, r = one_repo

    def down(*_a: Any, **_k: Any) -> bool:
        raise RedisError("connection refused")

    monkeypatch.setattr(queueing, "enqueue_unique", down)
    with pytest.raises(RedisError):
        request_index(session, [r], Trigger.MANUAL)
    r = repo(session, r.id)
    assert (r.status, r.next_index_at) == (RepositoryStatus.NEW.value, None)
    assert r.reindex_requested_at is not None
    assert session.scalar(select(func.count()).select_from(IndexRun)) == 0


# --- dispatch ------------------------------------------------------------------------


def test_only_one_dispatcher_acts_at_a_time(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        make_repos(session, make_integration(session, make_tenant(session)), 1)
        session.commit()
        conn = redis_conn.client
        with queueing.scheduler_lock(conn, wait=None) as held:
            assert held
            other = conn.lock(queueing.LOCK_KEY, timeout=5)
            assert not other.acquire(blocking=False)  # what another process sees
        dispatch()
        assert len(index_jobs()) == 1


def test_dispatch_when_another_process_holds_the_lock(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        make_repos(session, make_integration(session, make_tenant(session)), 1)
        session.commit()
        other = redis_conn.client.lock(queueing.LOCK_KEY, timeout=5)
        assert other.acquire(blocking=False)
        try:
            assert dispatch() == 0
        finally:
            other.release()


def test_due_selection(app: Flask) -> None:
    now = utcnow()
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        integration = make_integration(session, tenant, interval=60)
        ok = {"status": "ok", "last_indexed_at": now - H}
        due = make_repos(session, integration, 1, next_index_at=now - M, **ok)
        later = make_repos(session, integration, 1, next_index_at=now + H, **ok)
        asked = make_repos(session, integration, 1, next_index_at=now + H, reindex_requested_at=now, **ok)
        disabled = make_repos(session, integration, 1, enabled=False)
        removed = make_repos(session, integration, 1, status="removed", removed_at=now)
        broken = make_integration(session, tenant)
        broken.status = "auth_failed"
        make_repos(session, broken, 1)
        session.commit()
        dispatch(now)
        assert sorted(index_jobs()) == sorted(f"index-{i}" for i in due + asked)
        for rid in later + disabled + removed:
            assert f"index-{rid}" not in index_jobs()


def test_a_rate_limited_credential_is_paused_and_others_keep_going(app: Flask) -> None:
    now = utcnow()
    with app.app_context():
        session = db.session()
        limited = make_integration(session, make_tenant(session, "one"))
        other = make_integration(session, make_tenant(session, "two"))
        (hit,) = make_repos(session, limited, 1, status=RepositoryStatus.RATE_LIMITED.value, next_index_at=now + 30 * M)
        limited_ids = make_repos(session, limited, 3)
        other_ids = make_repos(session, other, 3)
        session.commit()
        dispatch(now)
        assert sorted(index_jobs()) == sorted(f"index-{i}" for i in other_ids[:2])
        # after the reset, the credential's repositories come back
        for rid in other_ids[:2]:
            r = repo(session, rid)
            r.status, r.last_indexed_at, r.next_index_at = "ok", now, now + 5 * H
        session.commit()
        redis_conn.client.delete(*[f"rq:job:index-{i}" for i in other_ids[:2]], "rq:queue:indexing")
        dispatch(now + 31 * M)
        jobs = set(index_jobs())
        assert f"index-{hit}" in jobs or all(f"index-{i}" in jobs for i in limited_ids[:2])
        assert len(jobs & {f"index-{i}" for i in [hit, *limited_ids]}) == 2


def test_pause_credential_holds_until_the_reset(app: Flask) -> None:
    now = utcnow()
    with app.app_context():
        session = db.session()
        paused = make_integration(session, make_tenant(session))
        paused_ids = make_repos(session, paused, 2)
        session.commit()
        pause_credential(paused.credential_key, now + 10 * M, now=now)
        pause_credential(paused.credential_key, now + 5 * M, now=now)  # an earlier reset does not shorten it
        dispatch(now + 6 * M)
        assert index_jobs() == []
        dispatch(now + 11 * M)
        assert sorted(index_jobs()) == sorted(f"index-{i}" for i in paused_ids)


def test_a_job_redis_lost_is_given_up_and_retried_at_once(one_repo: tuple[Any, Repository]) -> None:
    session, r = one_repo
    request_index(session, [r], Trigger.MANUAL)
    redis_conn.client.flushdb()  # Redis lost everything (restart without persistence)
    now = utcnow()
    dispatch(now)
    assert index_jobs() == []  # within the grace period: left alone
    assert repo(session, r.id).status == RepositoryStatus.QUEUED.value
    later = now + 3 * M
    dispatch(later)  # reaped: the run fails, and the repository is due again at once
    first, *_ = session.scalars(select(IndexRun).order_by(IndexRun.id)).all()
    assert first.status == RunStatus.FAILED.value and "worker lost" in (first.error or "")
    assert first.finished_at is not None
    if not index_jobs():
        dispatch(later)
    assert index_jobs() == [f"index-{r.id}"]


def test_a_job_that_returned_without_recording_the_end_releases_the_repository(
    one_repo: tuple[Any, Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, r = one_repo
    monkeypatch.setattr(sync, "run_index", lambda *_a: FakeResult({}))  # returns, records nothing
    request_index(session, [r], Trigger.MANUAL)
    _work()
    dispatch(utcnow() + 3 * M)
    r = repo(session, r.id)
    assert (r.status, r.last_error) == (RepositoryStatus.NEW.value, None)
    (run,) = session.scalars(select(IndexRun)).all()
    assert run.status == RunStatus.FAILED.value and "without recording" in (run.error or "")


def test_a_job_killed_past_its_retries_is_given_up(
    one_repo: tuple[Any, Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, r = one_repo
    monkeypatch.setattr(sync, "run_index", lambda *_a: 1 / 0)
    request_index(session, [r], Trigger.MANUAL)
    r = repo(session, r.id)
    r.status = RepositoryStatus.INDEXING.value  # started, then the work horse died
    session.commit()
    j = job(f"index-{r.id}")
    j.retries_left = 0
    j.save()
    _work()
    later = utcnow() + 3 * M
    dispatch(later)
    assert repo(session, r.id).status == RepositoryStatus.FAILED.value
    dispatch(later + 5 * M)  # a job that failed past its retries waits LOST_JOB_RETRY
    assert repo(session, r.id).status == RepositoryStatus.FAILED.value
    dispatch(later + 11 * M)
    assert repo(session, r.id).status == RepositoryStatus.QUEUED.value


def test_no_change_dispatch_over_1000_repositories_is_a_few_queries(app: Flask) -> None:
    now = utcnow()
    with app.app_context():
        session = db.session()
        for name in ("a", "b", "c", "d"):
            integration = make_integration(session, make_tenant(session, name))
            make_repos(session, integration, 250, status="ok", last_indexed_at=now - H, next_index_at=now + H)
        session.commit()
        dispatch(now)  # the first pass also does the once-a-minute housekeeping
        assert index_jobs() == []
        with count_queries() as statements:
            started = time.perf_counter()
            assert dispatch(now) == 0
            elapsed = time.perf_counter() - started
        assert len(statements) <= 4, statements
        assert elapsed < 0.5, elapsed


def test_dispatch_queues_discovery_for_new_integrations_once(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        fresh = make_integration(session, tenant, discovered=False)
        make_integration(session, tenant)  # discovered a minute ago
        session.commit()
        dispatch()
        assert f"discover-{fresh.id}" in job_ids("indexing")
        (run,) = session.scalars(select(IndexRun).where(IndexRun.kind == RunKind.DISCOVER.value)).all()
        assert (run.trigger, run.integration_id) == ("initial", fresh.id)
        redis_conn.client.delete(queueing_housekeeping_key())
        redis_conn.client.delete(f"rq:job:discover-{fresh.id}", "rq:queue:indexing")
        dispatch()  # attempted within the last 15 minutes: not again yet
        assert job_ids("indexing") == []


def queueing_housekeeping_key() -> str:
    from connect_app.indexing.scheduler import HOUSEKEEPING_KEY

    return HOUSEKEEPING_KEY


def test_start_integration_discovers_at_once(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        first = make_integration(session, tenant, discovered=False)
        second = make_integration(session, tenant, discovered=False)
        session.commit()
        assert start_integration(session, first)
        assert start_integration(session, second)
        assert start_integration(session, second) is False  # queued already
        assert job_ids("indexing") == [f"discover-{second.id}", f"discover-{first.id}"]  # at the front
        assert job(f"discover-{first.id}").func_name == "workers.jobs.discover_repositories"


def test_project_refresh_is_queued_for_tenants_without_fresh_projects(app: Flask) -> None:
    pytest.importorskip("connect_app.jira.projects")
    with app.app_context():
        session = db.session()
        with_integration = make_tenant(session, "busy")
        make_integration(session, with_integration)
        make_tenant(session, "idle")  # nothing to link: no need for its projects
        session.commit()
        dispatch()
        assert job_ids("maintenance") == [f"jira-projects-{with_integration.id}"]
        assert job(f"jira-projects-{with_integration.id}").args == (with_integration.id,)


def test_deliveries_stored_while_redis_was_down_are_enqueued(app: Flask) -> None:
    pytest.importorskip("connect_app.indexing.deliveries")
    with app.app_context():
        session = db.session()
        integration = make_integration(session, make_tenant(session))
        (rid,) = make_repos(session, integration, 1, status="ok", last_indexed_at=utcnow())
        session.add(
            WebhookDelivery(
                tenant_id=integration.tenant_id,
                integration_id=integration.id,
                delivery_key="d-1",
                event="push",
                status=DeliveryStatus.RECEIVED.value,
                received_at=utcnow() - timedelta(minutes=5),
                repository_ids=[rid],
            )
        )
        session.commit()
        dispatch()
        assert job_ids("webhooks") == [f"index-{rid}"]


# --- pruning -------------------------------------------------------------------------


def test_prune_history(app: Flask) -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    with app.app_context():
        session = db.session()
        integration = make_integration(session, make_tenant(session))
        for finished, status in ((old, "done"), (recent, "done"), (old, "failed")):
            session.add(
                IndexRun(
                    tenant_id=integration.tenant_id,
                    integration_id=integration.id,
                    trigger="scheduled",
                    status=status,
                    queued_at=finished,
                    finished_at=finished,
                )
            )
        session.add(IndexRun(tenant_id=integration.tenant_id, integration_id=integration.id, trigger="initial",
                             status="queued", queued_at=old))  # fmt: skip
        for key, received, status in (("a", old, "enqueued"), ("b", recent, "enqueued"), ("c", old, "received")):
            session.add(
                WebhookDelivery(
                    tenant_id=integration.tenant_id,
                    integration_id=integration.id,
                    delivery_key=key,
                    status=status,
                    received_at=received,
                )
            )
        session.commit()
        assert prune_history(now) == 3
        left = session.scalars(select(IndexRun.status).order_by(IndexRun.id)).all()
        assert left == ["done", "queued"]
        assert sorted(session.scalars(select(WebhookDelivery.delivery_key))) == ["b", "c"]
