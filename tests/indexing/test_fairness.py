"""Fair dispatch: one tenant's backlog never starves another tenant, caps always hold."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import func, select, update

from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import RateBudget
from connect_app.hosts.ratelimit import RedisBudgetStore
from connect_app.indexing import budgets
from connect_app.indexing.fairness import Candidate, select_fair
from connect_app.indexing.scheduler import dispatch
from connect_app.integrations import host_for
from connect_app.models import IndexRun, Integration, Repository, RepositoryStatus, utcnow
from connect_app.runtime import runtime
from tests.indexing.scheduling_support import index_jobs, job_ids, make_integration, make_repos, make_tenant

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def cand(
    rid: int, tenant: int, cred: str = "c", *, first: bool = False, requested: bool = False, due: int = 0
) -> Candidate:
    return Candidate(rid, tenant, 1, cred, first, requested, T0 + timedelta(minutes=due))


def ids(chosen: list[Candidate]) -> list[int]:
    return [c.repository_id for c in chosen]


# --- the selection rule (pure) ----------------------------------------------------------


def test_round_robin_across_tenants_with_caps() -> None:
    backlog = [cand(i, tenant=1, cred=f"a{i % 3}", due=i) for i in range(1, 101)]
    other = [cand(1000, tenant=2, cred="b", due=500)]
    chosen = select_fair(
        backlog + other, tenant_inflight={}, credential_inflight={}, tenant_cap=4, credential_cap=lambda _k: 2
    )
    assert len([c for c in chosen if c.tenant_id == 1]) == 4
    assert 1000 in ids(chosen)[:2]  # the other tenant gets the second slot, not the fifth


def test_first_index_of_any_tenant_goes_before_scheduled_work() -> None:
    scheduled = [cand(i, tenant=1, cred=f"a{i}", due=i) for i in range(1, 4)]
    first = cand(50, tenant=2, cred="b", first=True, due=10_000)
    chosen = select_fair(
        [*scheduled, first], tenant_inflight={}, credential_inflight={}, tenant_cap=4, credential_cap=lambda _k: 4
    )
    assert ids(chosen)[0] == 50


def test_fewest_in_flight_first_then_oldest_due() -> None:
    chosen = select_fair(
        [cand(1, tenant=1, cred="a", due=0), cand(2, tenant=2, cred="b", due=5), cand(3, tenant=3, cred="c", due=9)],
        tenant_inflight={1: 2, 2: 1},
        credential_inflight={},
        tenant_cap=4,
        credential_cap=lambda _k: 4,
    )
    assert ids(chosen) == [3, 2, 1]


def test_within_a_tenant_requests_and_first_indexes_before_the_oldest_due() -> None:
    chosen = select_fair(
        [cand(1, tenant=1, due=0), cand(2, tenant=1, requested=True, due=30), cand(3, tenant=1, first=True, due=20)],
        tenant_inflight={},
        credential_inflight={},
        tenant_cap=2,
        credential_cap=lambda _k: 5,
    )
    assert ids(chosen) == [3, 2]


def test_credential_caps_count_jobs_already_in_flight_across_tenants() -> None:
    shared = [cand(1, tenant=1, cred="shared"), cand(2, tenant=2, cred="shared"), cand(3, tenant=2, cred="own")]
    chosen = select_fair(
        shared, tenant_inflight={}, credential_inflight={"shared": 1}, tenant_cap=4, credential_cap=lambda _k: 2
    )
    assert ids(chosen).count(1) + ids(chosen).count(2) == 1  # one slot left on the shared credential
    assert 3 in ids(chosen)


def test_a_paused_credential_is_skipped_and_its_cap_read_once() -> None:
    asked: list[str] = []

    def cap(key: str) -> int:
        asked.append(key)
        return 0 if key == "paused" else 2

    chosen = select_fair(
        [cand(i, tenant=1, cred="paused") for i in range(1, 6)] + [cand(9, tenant=1, cred="ok")],
        tenant_inflight={},
        credential_inflight={},
        tenant_cap=4,
        credential_cap=cap,
    )
    assert ids(chosen) == [9]
    assert sorted(asked) == ["ok", "paused"]


def test_nothing_for_a_tenant_at_its_cap() -> None:
    chosen = select_fair(
        [cand(1, tenant=1)], tenant_inflight={1: 4}, credential_inflight={}, tenant_cap=4, credential_cap=lambda _k: 9
    )
    assert chosen == []


# --- through the database and Redis -----------------------------------------------------


def test_a_tenant_with_5000_due_repositories_does_not_delay_another_tenants_first_index(app: Flask) -> None:
    settings_cap = runtime(app).settings
    with app.app_context():
        session = db.session()
        big, small = make_tenant(session, "big"), make_tenant(session, "small")
        big_integrations = [make_integration(session, big) for _ in range(3)]
        # 5,000 repositories indexed before and due since yesterday, on three credentials
        for i, integration in enumerate(big_integrations):
            make_repos(
                session,
                integration,
                [1700, 1700, 1600][i],
                status=RepositoryStatus.OK.value,
                last_indexed_at=utcnow() - timedelta(days=2),
                next_index_at=utcnow() - timedelta(days=1),
            )
        (first,) = make_repos(session, make_integration(session, small), 1)
        session.commit()

        started = time.perf_counter()
        dispatch()
        elapsed = time.perf_counter() - started

        jobs = job_ids("indexing")
        assert f"index-{first}" in jobs
        assert jobs.index(f"index-{first}") == 0  # a first index goes ahead of scheduled work
        big_jobs = session.scalar(select(func.count()).select_from(IndexRun).where(IndexRun.tenant_id == big.id))
        assert big_jobs == settings_cap.max_jobs_per_tenant
        assert len(index_jobs()) == big_jobs + 1
        per_credential = session.execute(
            select(Repository.integration_id, func.count())
            .where(Repository.tenant_id == big.id, Repository.status == RepositoryStatus.QUEUED.value)
            .group_by(Repository.integration_id)
        ).all()
        assert all(n <= settings_cap.max_jobs_per_credential for _i, n in per_credential)
        assert elapsed < 5, f"a dispatch over 5,000 due repositories took {elapsed:.2f}s"

        # caps are full: nothing more until a job ends
        assert dispatch() == 0
        assert len(index_jobs()) == big_jobs + 1


def test_first_indexes_of_both_tenants_interleave(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        a, b = make_tenant(session, "a"), make_tenant(session, "b")
        a_ids = make_repos(session, make_integration(session, a), 300)
        make_repos(session, make_integration(session, a), 300)
        (b_id,) = make_repos(session, make_integration(session, b), 1)
        session.commit()
        dispatch()
        jobs = job_ids("indexing")
        assert jobs[:2] == [f"index-{a_ids[0]}", f"index-{b_id}"]  # round robin, oldest first
        assert len(jobs) == 5  # a: 4 (tenant cap, 2 per credential), b: 1


def test_jobs_follow_as_room_frees_up(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        repo_ids = make_repos(session, make_integration(session, tenant), 5)
        session.commit()
        dispatch()
        assert len(index_jobs()) == 2  # max_jobs_per_credential
        # the two jobs end
        session.execute(
            update(Repository)
            .where(Repository.status == RepositoryStatus.QUEUED.value)
            .values(status=RepositoryStatus.OK.value, last_indexed_at=utcnow())
        )
        session.commit()
        assert dispatch() == 2  # housekeeping ran in the first pass only
        assert sorted(int(j.split("-")[1]) for j in index_jobs()) == repo_ids[:4]


def test_the_hosts_remaining_budget_paces_a_credential(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        spent, low, fine = (make_integration(session, tenant) for _ in range(3))
        spent_ids = make_repos(session, spent, 3)
        low_ids = make_repos(session, low, 3)
        fine_ids = make_repos(session, fine, 3)
        session.commit()
        store = RedisBudgetStore(redis_conn.client)
        now = time.time()
        reset = datetime.fromtimestamp(now + 1800, tz=UTC)
        # what the host client recorded from the hosts' rate-limit headers
        store.record(_budget_key(spent), RateBudget(limit=5000, remaining=0, reset_at=reset), now=now)
        store.record(_budget_key(low), RateBudget(limit=5000, remaining=20, reset_at=reset), now=now)
        store.record(_budget_key(fine), RateBudget(limit=5000, remaining=4000, reset_at=reset), now=now)
        budgets.clear_cache()

        dispatch()
        jobs = {int(j.split("-")[1]) for j in index_jobs()}
        assert not jobs & set(spent_ids)
        assert len(jobs & set(low_ids)) == 1
        assert len(jobs & set(fine_ids)) == 2
        assert session.get(Repository, spent_ids[0], populate_existing=True).status == RepositoryStatus.NEW.value


def _budget_key(integration: Integration) -> str:
    """Where the host client of this integration records its budget (host + secret fingerprint)."""
    host = host_for(integration)
    return str(host._http._budget_key)  # type: ignore[attr-defined]
