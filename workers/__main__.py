"""``python -m workers``: an RQ worker (with the RQ scheduler) on every queue, in priority order."""

from __future__ import annotations

import argparse

from rq import Queue, Worker

from connect_app import create_app
from connect_app.extensions import redis_conn
from workers.queues import ALL_QUEUES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers")
    parser.add_argument("--queues", nargs="*", default=[q.value for q in ALL_QUEUES])
    parser.add_argument("--burst", action="store_true", help="drain the queues and exit")
    parser.add_argument("--no-scheduler", action="store_true")
    args = parser.parse_args(argv)

    app = create_app()
    with app.app_context():
        connection = redis_conn.client
        queues = [Queue(name, connection=connection) for name in args.queues]
        worker = Worker(queues, connection=connection)
        worker.work(with_scheduler=not args.no_scheduler, burst=args.burst)


if __name__ == "__main__":
    main()
