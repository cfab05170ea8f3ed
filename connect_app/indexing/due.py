"""What the dispatcher reads before it enqueues: what is in flight (and what vanished),
which credentials are paused or nearly out of budget, and which repositories are due.

In flight means ``repository.status`` is ``queued`` (set when the job is enqueued) or
``indexing`` (set by the engine when it starts): one query over ``repository`` counts
them per tenant and per credential, and also finds credentials a rate-limited run
paused (``status=rate_limited`` with ``next_index_at`` ahead).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis import Redis
from sqlalchemy import and_, case, func, or_, select, type_coerce, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from connect_app.indexing import queueing
from connect_app.indexing.fairness import Candidate, select_fair
from connect_app.jira.licensing import tenant_may_index
from connect_app.models import (
    IndexRun,
    Integration,
    IntegrationStatus,
    Repository,
    RepositoryStatus,
    RunStatus,
    Tenant,
    UTCDateTime,
)
from connect_app.runtime import runtime

log = logging.getLogger(__name__)

IN_FLIGHT = (RepositoryStatus.QUEUED.value, RepositoryStatus.INDEXING.value)
LOST_JOB_GRACE = timedelta(minutes=2)  # a job is enqueued right after its run row commits
LOST_JOB_RETRY = timedelta(minutes=10)
LOST_JOB_ERROR = "the indexing job stopped without recording a result (worker lost); it will be retried"
ENDED_JOB_ERROR = "the indexing job ended without recording a result"
LOW_BUDGET_REQUESTS = 50  # below this many requests left (or 5 % of the limit), one job at a time


@dataclass
class Load:
    tenant: Counter[int] = field(default_factory=Counter)
    credential: Counter[str] = field(default_factory=Counter)
    paused: dict[str, datetime] = field(default_factory=dict)


def load(session: Session, conn: Redis, now: datetime, *, reap: bool) -> Load:
    """One query: repositories in flight (per tenant and credential) and credentials a
    rate-limited run paused. Jobs that vanished from Redis are given up on first."""
    rows = session.execute(
        select(
            Repository.id,
            Repository.tenant_id,
            Integration.credential_key,
            Repository.status,
            Repository.updated_at,
            Repository.next_index_at,
        )
        .join(Integration, Integration.id == Repository.integration_id)
        .where(
            or_(
                Repository.status.in_(IN_FLIGHT),
                and_(Repository.status == RepositoryStatus.RATE_LIMITED.value, Repository.next_index_at > now),
            )
        )
    ).all()
    load = Load()
    quiet = [r.id for r in rows if r.status in IN_FLIGHT and r.updated_at < now - LOST_JOB_GRACE]
    lost = reap_lost_jobs(session, conn, quiet, now) if reap else set()
    for r in rows:
        if r.status in IN_FLIGHT and r.id not in lost:
            load.tenant[r.tenant_id] += 1
            load.credential[r.credential_key] += 1
        elif r.status == RepositoryStatus.RATE_LIMITED.value and r.next_index_at is not None:
            load.paused[r.credential_key] = max(r.next_index_at, load.paused.get(r.credential_key, r.next_index_at))
    return load


def reap_lost_jobs(session: Session, conn: Redis, ids: Sequence[int], now: datetime) -> set[int]:
    """In-flight repositories (quiet for a while) whose job is no longer going to run.

    * the job returned without recording an end (the engine skipped it): the repository
      gets its status back (``ok``, or ``new`` if never indexed);
    * the job is gone (Redis lost it): ``failed`` and due again at once;
    * the job failed/stopped past its retries (a killed work horse, a bug): ``failed``, tried
      again after :data:`LOST_JOB_RETRY`.

    Their IndexRuns still queued or running are closed as failed, so the queue viewer
    never shows a run that nothing is working on. Returns the repositories released.
    """
    if not ids:
        return set()
    statuses = queueing.job_statuses(conn, [queueing.index_job_id(i) for i in ids])
    ended = {i for i in ids if statuses[queueing.index_job_id(i)] == "finished"}
    lost = {i for i in ids if statuses[queueing.index_job_id(i)] not in queueing.ACTIVE_JOB_STATUSES} - ended
    if not (ended or lost):
        return set()
    still_in_flight = Repository.status.in_(IN_FLIGHT)  # the engine may have just finished: keep its word
    if ended:
        session.execute(
            update(Repository)
            .where(Repository.id.in_(ended), still_in_flight)
            .values(
                status=case(
                    (Repository.last_indexed_at.is_(None), RepositoryStatus.NEW.value), else_=RepositoryStatus.OK.value
                )
            )
        )
    if lost:
        # A job Redis no longer has at all (a Redis crash or failover without persistence) was never
        # the repository's fault: due again at once. One that failed or stopped past its retries
        # waits LOST_JOB_RETRY, so a job that kills its work horse does not run in a loop.
        vanished = {i for i in lost if statuses[queueing.index_job_id(i)] is None}
        for group, retry_at in ((vanished, now), (lost - vanished, now + LOST_JOB_RETRY)):
            if group:
                session.execute(
                    update(Repository)
                    .where(Repository.id.in_(group), still_in_flight)
                    .values(status=RepositoryStatus.FAILED.value, last_error=LOST_JOB_ERROR, next_index_at=retry_at)
                )
    for repository_ids, error in ((ended, ENDED_JOB_ERROR), (lost, LOST_JOB_ERROR)):
        if repository_ids:
            session.execute(
                update(IndexRun)
                .where(
                    IndexRun.repository_id.in_(repository_ids),
                    IndexRun.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
                )
                .values(status=RunStatus.FAILED.value, finished_at=now, error=error)
            )
    session.commit()
    if lost:
        log.warning("gave up on %d lost index job(s): repositories %s", len(lost), sorted(lost))
    return ended | lost


def eligible() -> ColumnElement[bool]:
    """Repository rows that may be indexed at all (joined to integration and tenant)."""
    return and_(
        Repository.enabled.is_(True),
        Repository.removed_at.is_(None),
        Repository.status.not_in(IN_FLIGHT),
        Integration.status == IntegrationStatus.ACTIVE.value,
        Tenant.enabled.is_(True),
        tenant_may_index(),  # ENABLE_LICENSING: not a site whose last answer was "no licence"
    )


def due_candidates(session: Session, now: datetime, per_group: int) -> list[Candidate]:
    """Due repositories, at most ``per_group`` per (tenant, credential): no more could be
    enqueued this pass. One query; the database ranks, however long the backlog."""
    requested = Repository.reindex_requested_at.is_not(None)
    first_index = Repository.last_indexed_at.is_(None)
    urgent = or_(requested, first_index)
    due_at = type_coerce(
        func.coalesce(Repository.reindex_requested_at, Repository.next_index_at, Repository.created_at), UTCDateTime()
    )
    rank = (
        func.row_number()
        .over(
            partition_by=(Repository.tenant_id, Integration.credential_key),
            order_by=(urgent.desc(), due_at, Repository.id),
        )
        .label("rank")
    )
    ranked = (
        select(
            Repository.id.label("repository_id"),
            Repository.tenant_id,
            Repository.integration_id,
            Integration.credential_key,
            first_index.label("first_index"),
            requested.label("requested"),
            due_at.label("due_at"),
            rank,
        )
        .join(Integration, Integration.id == Repository.integration_id)
        .join(Tenant, Tenant.id == Repository.tenant_id)
        .where(
            eligible(),
            or_(Repository.next_index_at.is_(None), Repository.next_index_at <= now, requested),
        )
        .subquery()
    )
    rows = session.execute(select(ranked).where(ranked.c.rank <= per_group)).all()
    return [
        Candidate(
            repository_id=r.repository_id,
            tenant_id=r.tenant_id,
            integration_id=r.integration_id,
            credential_key=r.credential_key,
            first_index=bool(r.first_index),
            requested=bool(r.requested),
            due_at=r.due_at or now,
        )
        for r in rows
    ]


def credential_cap_for(integration: Integration | None, now: datetime) -> int:
    """``max_jobs_per_credential``, one job when the host says the budget is nearly
    spent, none while it is exhausted."""
    cap = runtime().settings.max_jobs_per_credential
    if integration is None:
        return cap
    from connect_app.indexing.budgets import credential_budget

    budget = credential_budget(integration)
    if budget is None or budget.remaining is None:
        return cap
    if budget.remaining <= 0 and budget.reset_at is not None and budget.reset_at > now:
        return 0
    if budget.limit and budget.remaining < max(LOW_BUDGET_REQUESTS, budget.limit // 20):
        return min(cap, 1)
    return cap


def choose(
    session: Session, conn: Redis, candidates: list[Candidate], load: Load, now: datetime, tenant_cap: int
) -> list[Candidate]:
    """:func:`~connect_app.indexing.fairness.select_fair` with this pass's pauses (rate-limited
    runs, :func:`~connect_app.indexing.queueing.pause_credential`) and the hosts' budgets."""
    if not candidates:
        return []
    paused = {**load.paused}
    for key, until in queueing.paused_credentials(conn, {c.credential_key for c in candidates}, now=now).items():
        paused[key] = max(until, paused.get(key, until))
    an_integration = {c.credential_key: c.integration_id for c in candidates}

    def credential_cap(key: str) -> int:
        if key in paused:
            return 0
        return credential_cap_for(session.get(Integration, an_integration[key]), now)

    return select_fair(
        candidates,
        tenant_inflight=load.tenant,
        credential_inflight=load.credential,
        tenant_cap=tenant_cap,
        credential_cap=credential_cap,
    )
