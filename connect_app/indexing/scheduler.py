"""When and in what order repositories are indexed (adaptive intervals, fairness, rate budgets).

Public surface:

    request_index(session, repositories, trigger) -> int
        "Index these soon": webhooks and "reindex now". Sets ``reindex_requested_at`` and
        commits, then enqueues right away those that fit under the caps (one unique job per
        repository); the rest keep the request and :func:`dispatch` enqueues them as room
        frees up. Raises ``redis.exceptions.RedisError`` when Redis is down, after the
        database change is committed, so the webhook intake leaves its delivery pending.

    request_discovery(session, integration, trigger) -> bool / start_integration(session, integration)
        Queue a discovery run (the initial one at the front of the queue).

    dispatch(now=None) -> int
        One pass of the periodic dispatcher (``workers.dispatcher``): retry webhook
        deliveries Redis missed, give up on jobs that vanished, enqueue due repositories
        fairly, and (once a minute) queue discoveries and Jira project refreshes that are
        due. Returns how many jobs it enqueued.

    schedule_next(repo, integration, now, *, trigger=None) -> datetime
        Sets ``repo.next_index_at`` from the interval formula below.

    pause_credential(credential_key, until)
        No index job for that credential is dispatched before ``until``.

    prune_history(now=None) -> int
        Delete old finished IndexRuns, old handled webhook deliveries and old log events.

Licensing (``ENABLE_LICENSING`` on): a site whose last ``lic`` answer was "no licence"
(``tenant.license_active`` False) is neither indexed nor discovered, whatever the trigger
(schedule, webhook, "reindex now"); its requests wait until the licence is active again
(a page with ``lic=active``, or the periodic licence refresh).
Unknown (None) counts as licensed. See :mod:`connect_app.jira.licensing`.

Contract with the engine (``sync.run_index``), which owns a run once it starts:

* it sets ``status=indexing`` when it starts and never leaves ``queued``/``indexing``
  behind when the job ends (those two mean "in flight" here and count against caps);
* on success it sets ``last_indexed_at``, ``last_changed_at`` when it found anything new,
  and calls :func:`schedule_next` (this module already set a provisional
  ``next_index_at`` when it enqueued, so a forgotten call only shifts the interval's start);
* on ``RateLimited`` it sets ``status=rate_limited`` and ``next_index_at=reset_at``: the
  dispatcher then pauses that credential until then (it also reads the pause from
  :func:`pause_credential` and from the shared rate budget the host client records).

``reindex_requested_at`` is cleared when a job is enqueued; a request arriving while that
job is queued or running sets it again, so the repository is indexed once more after it.

Interval (``schedule_next``):

* the integration's ``reindex_interval_minutes`` when set;
* otherwise adaptive: a quarter of the time the repository has been quiet
  (``now - (last_changed_at or created_at)``), clamped to [15 min, 24 h]; for a
  webhook-fed repository (``webhook_id`` set, or a webhook delivery named it in the last
  day) the schedule is only a safety net: clamped to [6 h, 24 h];
* plus a fixed per-repository spread of up to 10 % so repositories added together do not
  come due together.

    quiet for:   <1 h   2 h     4 h   12 h   1 d   2 d    4 d+
    interval:    15 m   30 m    1 h   3 h    6 h   12 h   24 h
    webhook-fed: 6 h    6 h     6 h   6 h    6 h   12 h   24 h
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from connect_app.extensions import db, redis_conn
from connect_app.indexing import due, housekeeping, queueing, runs
from connect_app.indexing.fairness import Candidate
from connect_app.jira.licensing import tenant_licensed
from connect_app.models import (
    DeliveryStatus,
    IndexRun,
    Integration,
    Repository,
    RepositoryStatus,
    Tenant,
    Trigger,
    WebhookDelivery,
    utcnow,
)
from connect_app.runtime import runtime
from connect_app.services.integration_log import prune_events

log = logging.getLogger(__name__)

ADAPTIVE_MIN = timedelta(minutes=15)
ADAPTIVE_MAX = timedelta(hours=24)
WEBHOOK_FED_MIN = timedelta(hours=6)
QUIET_FRACTION = 4  # wait a quarter of the time the repository has been quiet
SPREAD = 0.10

LOCK_WAIT_SECONDS = 5.0  # request_index waits this long for a dispatch in progress
HOUSEKEEPING_KEY = "gcj:scheduler:housekeeping"
HOUSEKEEPING_SECONDS = 60

IN_FLIGHT = due.IN_FLIGHT


# --- intervals -----------------------------------------------------------------------


def adaptive_interval(*, quiet_for: timedelta, webhook_fed: bool) -> timedelta:
    """See the module docstring's table."""
    interval = max(quiet_for, timedelta(0)) / QUIET_FRACTION
    low = WEBHOOK_FED_MIN if webhook_fed else ADAPTIVE_MIN
    return min(max(interval, low), ADAPTIVE_MAX)


def reindex_interval(
    repo: Repository, integration: Integration, now: datetime, *, webhook_fed: bool = False
) -> timedelta:
    if integration.reindex_interval_minutes:
        return timedelta(minutes=max(1, integration.reindex_interval_minutes))
    quiet_since = repo.last_changed_at or repo.created_at or now
    fed = webhook_fed or repo.webhook_id is not None
    return adaptive_interval(quiet_for=now - quiet_since, webhook_fed=fed)


def schedule_next(
    repo: Repository,
    integration: Integration,
    now: datetime | None = None,
    *,
    trigger: Trigger | str | None = None,
    webhook_fed: bool = False,
) -> datetime:
    """Set and return ``repo.next_index_at`` (not committed). The engine calls it when a
    run succeeds, passing the run's trigger (a webhook-triggered run marks the
    repository webhook-fed)."""
    now = now or utcnow()
    fed = webhook_fed or (trigger is not None and Trigger(trigger) is Trigger.WEBHOOK)
    interval = reindex_interval(repo, integration, now, webhook_fed=fed)
    spread = ((repo.id or 0) * 2654435761 % 1000) / 1000 * SPREAD  # Knuth's multiplicative hash
    repo.next_index_at = now + interval * (1 + spread)
    return repo.next_index_at


# --- pauses --------------------------------------------------------------------------


def pause_credential(credential_key: str, until: datetime, *, now: datetime | None = None) -> None:
    """Dispatch nothing for this credential before ``until`` (a rate limit's reset)."""
    queueing.pause_credential(redis_conn.client, credential_key, until, now=now or utcnow())


# --- enqueueing ----------------------------------------------------------------------


def _enqueue_selected(
    session: Session,
    conn: Redis,
    chosen: Sequence[Candidate],
    now: datetime,
    *,
    trigger: Trigger | None = None,
) -> int:
    """Enqueue ``chosen`` in order; ``trigger`` None: from the stored request, else
    INITIAL for a first index, else SCHEDULED."""
    if not chosen:
        return 0
    ids = [c.repository_id for c in chosen]
    repos = {
        r.id: r
        for r in session.scalars(
            select(Repository).where(Repository.id.in_(ids)).execution_options(populate_existing=True)
        )
    }
    integrations = {
        i.id: i
        for i in session.scalars(select(Integration).where(Integration.id.in_({c.integration_id for c in chosen})))
    }
    stored = queueing.requested_triggers(conn, [c.repository_id for c in chosen if c.requested]) if not trigger else {}
    fed = queueing.webhook_fed(conn, ids)
    enqueued = 0
    for c in chosen:
        repo = repos.get(c.repository_id)
        if repo is None or repo.status in IN_FLIGHT:
            continue
        if trigger is not None:
            why = trigger
        elif c.requested:
            why = stored.get(repo.id, Trigger.MANUAL)
        else:
            why = Trigger.INITIAL if c.first_index else Trigger.SCHEDULED
        if _enqueue_index(session, conn, repo, integrations[c.integration_id], why, now, webhook_fed=repo.id in fed):
            enqueued += 1
    return enqueued


def _enqueue_index(
    session: Session,
    conn: Redis,
    repo: Repository,
    integration: Integration,
    trigger: Trigger,
    now: datetime,
    *,
    webhook_fed: bool,
) -> bool:
    """Queue one IndexRun and its job. The run row commits first (the job may start at
    once); if the job cannot be enqueued the row and the repository are put back."""
    job_id = queueing.index_job_id(repo.id)
    if not queueing.clear_finished_job(conn, job_id):
        return False  # already queued or running; the request stays for after it
    before = (repo.status, repo.reindex_requested_at, repo.next_index_at)
    run = runs.queue_run(
        session,
        tenant_id=repo.tenant_id,
        integration_id=repo.integration_id,
        repository_id=repo.id,
        trigger=trigger,
        job_id=job_id,
    )
    repo.status = RepositoryStatus.QUEUED.value
    repo.reindex_requested_at = None
    schedule_next(repo, integration, now, trigger=trigger, webhook_fed=webhook_fed)
    session.commit()
    queue_name, at_front = queueing.queue_for(trigger)
    try:
        ok = queueing.enqueue_unique(
            conn,
            queue_name,
            queueing.INDEX_FUNC,
            (repo.id, trigger.value, run.id),
            job_id,
            timeout=queueing.INDEX_JOB_TIMEOUT,
            at_front=at_front,
            description=f"index repository {repo.id} ({trigger.value})",
        )
    except RedisError:
        _put_back(session, repo, run, before)
        raise
    if not ok:
        _put_back(session, repo, run, before)
        return False
    try:
        queueing.forget_request(conn, repo.id)
    except RedisError:
        pass  # a stale trigger label at worst
    return True


def _put_back(
    session: Session, repo: Repository, run: IndexRun, before: tuple[str, datetime | None, datetime | None]
) -> None:
    session.rollback()
    repo.status, repo.reindex_requested_at, repo.next_index_at = before
    session.execute(delete(IndexRun).where(IndexRun.id == run.id))
    session.commit()


def request_index(
    session: Session,
    repositories: Sequence[Repository],
    trigger: Trigger | str,
    *,
    wait: float | None = LOCK_WAIT_SECONDS,
) -> int:
    """See the module docstring. Returns how many jobs were enqueued now. ``wait``: how long to
    wait for a scheduler pass in progress (None: not at all); the request is stored either way,
    and the pass holding the lock, or the dispatcher's next tick, takes it."""
    trigger = Trigger(trigger)
    repos = list(repositories)
    if not repos:
        return 0
    now = utcnow()
    ids = [r.id for r in repos]
    # by id: the rows change even if the caller loaded them in another session
    session.execute(update(Repository).where(Repository.id.in_(ids)).values(reindex_requested_at=now))
    session.commit()
    conn = redis_conn.client
    queueing.remember_requests(conn, ids, trigger)  # raises RedisError when down
    settings = runtime().settings
    with queueing.scheduler_lock(conn, wait=wait) as held:
        if not held:
            return 0  # a long dispatch is running; it (or the next one) takes the requests
        load = due.load(session, conn, now, reap=False)
        rows = session.execute(
            select(
                Repository.id,
                Repository.tenant_id,
                Repository.integration_id,
                Integration.credential_key,
                Repository.last_indexed_at,
            )
            .join(Integration, Integration.id == Repository.integration_id)
            .join(Tenant, Tenant.id == Repository.tenant_id)
            .where(Repository.id.in_(ids), due.eligible())
        ).all()
        candidates = [
            Candidate(r.id, r.tenant_id, r.integration_id, r.credential_key, r.last_indexed_at is None, True, now)
            for r in rows
        ]
        chosen = due.choose(session, conn, candidates, load, now, settings.max_jobs_per_tenant)
        return _enqueue_selected(session, conn, chosen, now, trigger=trigger)


# --- discovery -----------------------------------------------------------------------


def request_discovery(
    session: Session, integration: Integration, trigger: Trigger | str = Trigger.MANUAL, *, at_front: bool = False
) -> bool:
    """Queue a discovery run for the integration unless one is queued or running, or its
    site has no active licence (``ENABLE_LICENSING``; :mod:`connect_app.jira.licensing`).
    Raises RedisError (after committing) when Redis is down."""
    session.commit()
    tenant = session.get(Tenant, integration.tenant_id)
    if tenant is None or not tenant_licensed(tenant):
        return False
    conn = redis_conn.client
    with queueing.scheduler_lock(conn, wait=LOCK_WAIT_SECONDS) as held:
        if not held:
            return False
        return housekeeping.enqueue_discovery(session, conn, integration, Trigger(trigger), at_front=at_front)


def start_integration(session: Session, integration: Integration) -> bool:
    """A new (or repaired) integration: discover its repositories now, at the front of
    the queue; discovery then requests the initial index of every repository."""
    return request_discovery(session, integration, Trigger.INITIAL, at_front=True)


# --- dispatch ------------------------------------------------------------------------


def dispatch(now: datetime | None = None) -> int:
    """See the module docstring. Runs inside an app context."""
    now = now or utcnow()
    session = db.session()
    conn = redis_conn.client
    settings = runtime().settings
    enqueued = 0
    with queueing.scheduler_lock(conn, wait=None) as held:
        if not held:
            return 0  # another process is dispatching right now
        enqueued += _retry_deliveries(session)
        load = due.load(session, conn, now, reap=True)
        per_group = max(1, min(settings.max_jobs_per_tenant, settings.max_jobs_per_credential))
        candidates = due.due_candidates(session, now, per_group)
        chosen = due.choose(session, conn, candidates, load, now, settings.max_jobs_per_tenant)
        enqueued += _enqueue_selected(session, conn, chosen, now)
        if conn.set(HOUSEKEEPING_KEY, "1", nx=True, ex=HOUSEKEEPING_SECONDS):
            enqueued += housekeeping.run(session, conn, now)
    if enqueued:
        log.info("dispatch enqueued %d job(s)", enqueued)
    return enqueued


def _retry_deliveries(session: Session) -> int:
    """Webhook deliveries stored while Redis was down (connect_app.indexing.deliveries)."""
    try:
        from connect_app.indexing.deliveries import enqueue_pending
    except ImportError:
        return 0
    try:
        return int(enqueue_pending(session))
    except RedisError:
        raise
    except Exception:
        session.rollback()
        log.exception("retrying pending webhook deliveries failed")
        return 0


# --- pruning -------------------------------------------------------------------------


def prune_history(now: datetime | None = None) -> int:
    """Delete finished IndexRuns, handled webhook deliveries and integration log events older
    than ``index_run_retention_days``; deliveries still waiting to be enqueued are kept."""
    now = now or utcnow()
    session = db.session()
    keep = timedelta(days=runtime().settings.index_run_retention_days)
    removed = runs.prune_runs(session, older_than=keep, now=now)
    result = session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.status != DeliveryStatus.RECEIVED.value, WebhookDelivery.received_at < now - keep
        )
    )
    removed += int(getattr(result, "rowcount", 0) or 0)
    removed += prune_events(session, older_than=now - keep)
    session.commit()
    if removed:
        log.info("pruned %d index runs, webhook deliveries and log events older than %s", removed, keep)
    return removed
