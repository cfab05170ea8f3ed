"""``python -m workers``: an RQ worker (with the RQ scheduler) on every queue, in priority
order, plus the periodic dispatcher thread (``workers.dispatcher``).

SIGTERM/SIGINT: the dispatcher stops at once, the worker finishes its job (RQ's warm
shutdown), then the process exits.
"""

from __future__ import annotations

import argparse
import os
from types import FrameType
from typing import Any

from flask import Flask
from redis import Redis
from rq import Queue, Worker

from connect_app import create_app
from connect_app.extensions import db, redis_conn
from connect_app.runtime import runtime
from connect_app.startup import require_services
from workers.dispatcher import DEFAULT_INTERVAL_SECONDS, Dispatcher
from workers.queues import ALL_QUEUES


class DispatchingWorker(Worker):
    """An RQ worker that also stops the dispatcher when asked to stop."""

    dispatcher: Dispatcher | None = None

    def request_stop(self, signum: int, frame: FrameType | None) -> Any:
        if self.dispatcher is not None:
            self.dispatcher.request_stop()
        return super().request_stop(signum, frame)  # type: ignore[no-untyped-call]


def _interval_from_env() -> float:
    raw = os.environ.get("DISPATCH_INTERVAL_SECONDS", "").strip()
    return float(raw) if raw else DEFAULT_INTERVAL_SECONDS


def worker_connection(app: Flask) -> Redis:
    """The RQ worker's own Redis client. RQ waits for jobs in ``BLPOP`` for up to its dequeue
    timeout (minutes) and raises its pool's socket timeout above that, but only for connections
    made afterwards: sharing the app's client (10 s socket timeout), whose pool the dispatcher
    thread has already filled, made an idle worker give up after 10 s ("Redis connection
    timeout, quitting"). A pool of its own gets RQ's timeout from the first connection: still
    bounded, never shorter than a dequeue. The embedded Redis (no ``REDIS_URL``) has no
    socket timeout to begin with."""
    url = runtime(app).settings.redis_url
    if not url:
        return redis_conn.client
    return Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def build_worker(app: Flask, queue_names: list[str]) -> DispatchingWorker:
    connection = worker_connection(app)
    queues = [Queue(name, connection=connection) for name in queue_names]
    return DispatchingWorker(queues, connection=connection)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers")
    parser.add_argument("--queues", nargs="*", default=[q.value for q in ALL_QUEUES])
    parser.add_argument("--burst", action="store_true", help="drain the queues and exit (no dispatcher)")
    parser.add_argument("--no-scheduler", action="store_true")
    parser.add_argument("--no-dispatcher", action="store_true", help="do not run the periodic dispatcher")
    parser.add_argument(
        "--dispatch-interval",
        type=float,
        default=_interval_from_env(),
        help="seconds between dispatches (env DISPATCH_INTERVAL_SECONDS, default %(default)s)",
    )
    args = parser.parse_args(argv)

    app = create_app()
    require_services(app)  # a clear one-line error, not RQ's traceback, when Redis or the database is down
    with app.app_context():
        # RQ runs each job in a forked child: the child must not reuse the parent's pooled
        # database connections (the dispatcher thread uses them).
        engine = db.engine
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
        worker = build_worker(app, args.queues)
        dispatcher = None
        if not (args.burst or args.no_dispatcher):
            dispatcher = Dispatcher(app, interval=args.dispatch_interval)
            worker.dispatcher = dispatcher
            dispatcher.start()
        try:
            worker.work(with_scheduler=not args.no_scheduler, burst=args.burst)
        finally:
            if dispatcher is not None:
                dispatcher.stop()


if __name__ == "__main__":
    from connect_app.startup import clear_startup_errors

    with clear_startup_errors("worker"):
        main()
