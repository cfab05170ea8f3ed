"""The periodic dispatcher: a thread of ``python -m workers`` that calls
:func:`connect_app.indexing.scheduler.dispatch` every few seconds,
:func:`~connect_app.indexing.scheduler.prune_history` every hour, and every hour looks whether
a site is due for the personal-data report (:func:`connect_app.jira.personal_data.enqueue_if_due`:
one ``workers.jobs.report_personal_data`` job; each site is reported every
``PERSONAL_DATA_CYCLE_DAYS``, by its ``tenant.personal_data_due_at``) and, with
``ENABLE_LICENSING`` on, whether a site's licence should be asked of Jira again
(:func:`connect_app.jira.licensing.enqueue_refresh_if_due`).

Every worker process runs one; the scheduler's Redis lock lets one act at a time, and Redis
keys let one process prune, and one look for due reports, per hour. A tick that fails (Redis
or the database away) is logged once per outage and tried again on the next tick. ``stop()`` (called
on SIGTERM/SIGINT) ends the thread after the tick in progress.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from connect_app.extensions import redis_conn

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0
DEFAULT_PRUNE_SECONDS = 3600.0
HEARTBEAT_KEY = "gcj:dispatcher:heartbeat"  # epoch of the last tick of any dispatcher
PRUNE_KEY = "gcj:dispatcher:pruned"
PERSONAL_DATA_KEY = "gcj:dispatcher:personal-data"
LICENSES_KEY = "gcj:dispatcher:licenses"
DEFAULT_PERSONAL_DATA_SECONDS = 3600.0


class Dispatcher:
    def __init__(
        self,
        app: Flask,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        prune_interval: float = DEFAULT_PRUNE_SECONDS,
        personal_data_interval: float = DEFAULT_PERSONAL_DATA_SECONDS,
    ) -> None:
        if interval <= 0:
            raise ValueError("the dispatch interval must be positive")
        self.app = app
        self.interval = interval
        self.prune_interval = prune_interval
        self.personal_data_interval = personal_data_interval
        self.ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Dispatcher:
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gcj-dispatcher", daemon=True)
        self._thread.start()
        log.info("dispatcher started (every %.1fs)", self.interval)
        return self

    def request_stop(self) -> None:
        """Safe in a signal handler: only sets a flag."""
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the dispatcher did not stop within %.0fs", timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval)

    def _marketplace_jobs(self, conn: Redis) -> int:
        """At most once per ``personal_data_interval`` across all dispatchers: the personal-data
        report job when a site is due, the licence refresh job when a site is stale."""
        from connect_app.extensions import db
        from connect_app.jira.licensing import enqueue_refresh_if_due
        from connect_app.jira.personal_data import enqueue_if_due

        enqueued = 0
        every = max(1, int(self.personal_data_interval))
        if conn.set(PERSONAL_DATA_KEY, "1", nx=True, ex=every) and enqueue_if_due(db.session(), conn):
            enqueued += 1
        if conn.set(LICENSES_KEY, "1", nx=True, ex=every) and enqueue_refresh_if_due(db.session(), conn):
            enqueued += 1
        return enqueued

    def tick(self) -> int:
        """One dispatch (and a prune when one is due); never raises."""
        from connect_app.indexing.scheduler import dispatch, prune_history

        enqueued = 0
        with self.app.app_context():
            try:
                enqueued = dispatch()
                conn = redis_conn.client
                conn.set(HEARTBEAT_KEY, repr(time.time()), ex=max(60, int(self.interval * 10)))
                if conn.set(PRUNE_KEY, "1", nx=True, ex=max(1, int(self.prune_interval))):
                    prune_history()
                enqueued += self._marketplace_jobs(conn)
                if self._failing:
                    log.info("dispatcher recovered")
                self._failing = False
            except (RedisError, SQLAlchemyError) as e:
                if not self._failing:
                    log.warning("dispatch failed (%s); retrying every %.1fs", type(e).__name__, self.interval)
                self._failing = True
            except Exception:
                log.exception("dispatch failed")
        self.ticks += 1
        return enqueued
