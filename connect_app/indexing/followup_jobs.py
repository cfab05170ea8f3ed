"""Reconciling jobs: one background job per integration and kind that reads the rows when it
starts and brings the outside world in line with them (our webhooks on the host, what Jira's
Development panel holds). Callers change rows, commit, then call :func:`request`.

A change must never be lost to a job that already read the rows. So:

* each kind has one job id per integration (``<kind>-<integration id>``); a queued one reads
  the rows when it starts, so a request while it waits needs nothing more;
* a request while that job is *running* enqueues a second slot (``<id>-again``), which runs
  after it;
* the job body runs under :func:`integration_lock`, so two slots never work at once and the
  second reads the rows only after the first is done.

Jobs go to the maintenance queue with explicit timeouts, result and failure TTLs, and RQ's
retries (``queueing.enqueue_unique``); a job that could not finish (host or Jira down) raises
after saving what it did, and the retry carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import LockError

from connect_app.errors import AppError
from connect_app.extensions import redis_conn
from connect_app.indexing import queueing

log = logging.getLogger(__name__)

SECOND_SLOT = "-again"
LOCK_PREFIX = "gcj:reconcile-lock:"


class Busy(AppError):
    """Another job of the same kind held the integration's lock too long (RQ retries)."""

    code = "reconcile_busy"
    status = 503


def job_id(kind: str, integration_id: int) -> str:
    return f"{kind}-{integration_id}"


def request(kind: str, func: str, integration_id: int, *, timeout: int, description: str) -> bool:
    """Make sure a ``kind`` job for the integration will read the rows after this change.
    True when one is enqueued or already waiting; raises ``RedisError`` when Redis is down."""
    conn = redis_conn.client
    first = job_id(kind, integration_id)
    for slot in (first, first + SECOND_SLOT):
        if queueing.enqueue_unique(
            conn, queueing.MAINTENANCE_QUEUE, func, (integration_id,), slot, timeout=timeout, description=description
        ):
            return True
        if queueing.job_statuses(conn, [slot]).get(slot) != "started":
            return True  # waiting in the queue: it has not read the rows yet
    return True  # both slots taken: the second one is waiting for the first one's lock


@contextmanager
def integration_lock(kind: str, integration_id: int, *, timeout: int) -> Iterator[None]:
    """Held while a ``kind`` job works on the integration (expires after ``timeout`` seconds
    if its holder dies). Raises :class:`Busy` when not acquired within ``timeout``."""
    lock = redis_conn.client.lock(
        f"{LOCK_PREFIX}{kind}:{integration_id}", timeout=timeout, blocking=True, blocking_timeout=timeout
    )
    if not lock.acquire():
        raise Busy(f"Another {kind} job of integration {integration_id} is still running.")
    try:
        yield
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("the %s lock of integration %s expired before it was released", kind, integration_id)
