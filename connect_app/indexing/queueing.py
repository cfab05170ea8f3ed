"""The Redis side of scheduling: unique RQ jobs, the scheduler lock, credential pauses.

Job ids are ``index-<repository id>`` and ``discover-<integration id>`` (RQ 2 only
accepts ``[A-Za-z0-9_-]`` in ids). Every job is enqueued with ``unique=True``: the
Lua script refuses when the job hash exists, which is also true for a *finished* or
*failed* job whose hash lingers for ``result_ttl``/``failure_ttl``. Such a leftover
is deleted and the enqueue tried again; a queued, started or scheduled (retrying)
job is left alone. Every enqueue happens under :func:`scheduler_lock`, so the
check-then-delete cannot race another dispatcher.

Queue names are plain strings equal to ``workers.queues.QueueName`` values: the web
process never imports ``workers``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.exceptions import LockError
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.job import Job

from connect_app.log_context import job_meta
from connect_app.models import Trigger

log = logging.getLogger(__name__)

# workers.queues.QueueName values
WEBHOOKS_QUEUE = "webhooks"
INDEXING_QUEUE = "indexing"
MAINTENANCE_QUEUE = "maintenance"

INDEX_FUNC = "workers.jobs.index_repository"
DISCOVER_FUNC = "workers.jobs.discover_repositories"
REFRESH_PROJECTS_FUNC = "workers.jobs.refresh_jira_projects"

# A run commits its cursor as it goes, so a timed-out job loses little: its retry resumes.
INDEX_JOB_TIMEOUT = 2 * 3600
DISCOVER_JOB_TIMEOUT = 1800
MAINTENANCE_JOB_TIMEOUT = 600
JOB_RESULT_TTL = 300  # the IndexRun row is the record; the RQ result is only for debugging
JOB_FAILURE_TTL = 7 * 24 * 3600  # kept for `rq info`; replaced by the next enqueue anyway
RETRY_INTERVALS = (30, 120, 600)

# Statuses of a job that is still going to run (or running): never replaced.
ACTIVE_JOB_STATUSES = frozenset({"queued", "started", "scheduled", "deferred"})

LOCK_KEY = "gcj:scheduler:lock"
LOCK_TIMEOUT_SECONDS = 120  # a dispatcher that dies holding the lock blocks the others this long at most
PAUSE_PREFIX = "gcj:paused:"
REQUEST_PREFIX = "gcj:requested:"  # repository id -> trigger of a request not enqueued yet
REQUEST_TTL_SECONDS = 7 * 24 * 3600
WEBHOOK_SEEN_PREFIX = "gcj:webhook-seen:"  # repository id -> a webhook arrived recently
WEBHOOK_SEEN_SECONDS = 24 * 3600


def index_job_id(repository_id: int) -> str:
    return f"index-{repository_id}"


def discover_job_id(integration_id: int) -> str:
    return f"discover-{integration_id}"


def queue_for(trigger: Trigger) -> tuple[str, bool]:
    """(queue name, at front) for an index job: pushes on their own fast queue, a
    person's "reindex now" ahead of the scheduled backlog."""
    if trigger is Trigger.WEBHOOK:
        return WEBHOOKS_QUEUE, False
    if trigger is Trigger.MANUAL:
        return INDEXING_QUEUE, True
    return INDEXING_QUEUE, False


# --- the scheduler lock --------------------------------------------------------------

_held = threading.local()


@contextmanager
def scheduler_lock(conn: Redis, *, wait: float | None) -> Iterator[bool]:
    """One scheduler at a time across every process. Yields False when not acquired
    (``wait=None``: don't wait). Re-entrant within a thread (dispatch retries webhook
    deliveries, which call request_index). Raises RedisError when Redis is down."""
    depth = getattr(_held, "depth", 0)
    if depth:
        _held.depth = depth + 1
        try:
            yield True
        finally:
            _held.depth = depth
        return
    lock = conn.lock(LOCK_KEY, timeout=LOCK_TIMEOUT_SECONDS, blocking=wait is not None, blocking_timeout=wait)
    if not lock.acquire():
        yield False
        return
    _held.depth = 1
    try:
        yield True
    finally:
        _held.depth = 0
        try:
            lock.release()
        except LockError:
            log.warning(
                "the scheduler lock expired before it was released (a pass took over %ss)", LOCK_TIMEOUT_SECONDS
            )


# --- unique jobs ---------------------------------------------------------------------


def job_statuses(conn: Redis, job_ids: Sequence[str]) -> dict[str, str | None]:
    """The RQ status of each job (None: no such job), in one round trip."""
    if not job_ids:
        return {}
    pipe = conn.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(Job.key_for(job_id), "status")
    return {job_id: _text(raw) for job_id, raw in zip(job_ids, pipe.execute(), strict=True)}


def clear_finished_job(conn: Redis, job_id: str) -> bool:
    """Make room for a new job with this id: True when there is no job, or only a
    finished/failed/stopped/canceled one (deleted now); False while it is active."""
    status = _text(conn.hget(Job.key_for(job_id), "status"))
    if status is None:
        return True
    if status in ACTIVE_JOB_STATUSES:
        return False
    try:
        Job.fetch(job_id, connection=conn).delete()
    except Exception:  # unreadable leftovers (an old serializer...): drop the hash itself
        conn.delete(Job.key_for(job_id))
    return True


def enqueue_unique(
    conn: Redis,
    queue_name: str,
    func: str,
    args: tuple[Any, ...],
    job_id: str,
    *,
    timeout: int,
    at_front: bool = False,
    retry: bool = True,
    description: str | None = None,
) -> bool:
    """Enqueue ``func(*args)`` as the only job ``job_id``; False when an active job
    with that id exists. Raises RedisError when Redis is down."""
    queue = Queue(queue_name, connection=conn)
    for _attempt in range(2):
        if not clear_finished_job(conn, job_id):
            return False
        try:
            queue.enqueue_call(
                func,
                args=args,
                job_id=job_id,
                unique=True,
                timeout=timeout,
                result_ttl=JOB_RESULT_TTL,
                failure_ttl=JOB_FAILURE_TTL,
                retry=Retry(max=len(RETRY_INTERVALS), interval=list(RETRY_INTERVALS)) if retry else None,
                at_front=at_front,
                description=description,
                meta=job_meta(),  # the request (and site) that asked: named in the job's log lines
            )
            return True
        except DuplicateJobError:
            continue  # finished between our look and the script: look again
    return False


# --- credential pauses, pending request triggers, webhook marks ------------------------


def pause_credential(conn: Redis, credential_key: str, until: datetime, *, now: datetime) -> None:
    """No index job for this credential is dispatched before ``until`` (kept when later)."""
    seconds = int((until - now).total_seconds()) + 1
    if seconds <= 0:
        return
    key = PAUSE_PREFIX + credential_key
    current = _epoch(conn.get(key))
    if current is not None and current >= until.timestamp():
        return
    conn.set(key, repr(until.timestamp()), ex=seconds)


def paused_credentials(conn: Redis, credential_keys: Iterable[str], *, now: datetime) -> dict[str, datetime]:
    keys = sorted(set(credential_keys))
    if not keys:
        return {}
    paused: dict[str, datetime] = {}
    for key, raw in zip(keys, conn.mget([PAUSE_PREFIX + k for k in keys]), strict=True):
        until = _epoch(raw)
        if until is not None and until > now.timestamp():
            paused[key] = datetime.fromtimestamp(until, tz=UTC)
    return paused


def remember_requests(conn: Redis, repository_ids: Sequence[int], trigger: Trigger) -> None:
    """Keep what asked for a reindex until a job takes it (the DB only keeps when)."""
    pipe = conn.pipeline(transaction=False)
    for repository_id in repository_ids:
        pipe.set(f"{REQUEST_PREFIX}{repository_id}", trigger.value, ex=REQUEST_TTL_SECONDS)
        if trigger is Trigger.WEBHOOK:
            pipe.set(f"{WEBHOOK_SEEN_PREFIX}{repository_id}", "1", ex=WEBHOOK_SEEN_SECONDS)
    pipe.execute()


_TRIGGER_VALUES = frozenset(t.value for t in Trigger)


def requested_triggers(conn: Redis, repository_ids: Sequence[int]) -> dict[int, Trigger]:
    if not repository_ids:
        return {}
    found: dict[int, Trigger] = {}
    for repository_id, raw in zip(
        repository_ids, conn.mget([f"{REQUEST_PREFIX}{i}" for i in repository_ids]), strict=True
    ):
        text = _text(raw)
        if text in _TRIGGER_VALUES:
            found[repository_id] = Trigger(text)
    return found


def webhook_fed(conn: Redis, repository_ids: Sequence[int]) -> set[int]:
    """Repositories a webhook delivery named in the last day."""
    if not repository_ids:
        return set()
    raws = conn.mget([f"{WEBHOOK_SEEN_PREFIX}{i}" for i in repository_ids])
    return {i for i, raw in zip(repository_ids, raws, strict=True) if raw is not None}


def forget_request(conn: Redis, repository_id: int) -> None:
    conn.delete(f"{REQUEST_PREFIX}{repository_id}")


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _epoch(raw: Any) -> float | None:
    text = _text(raw)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None
