"""The dispatcher thread, and ``python -m workers`` that runs it next to the RQ worker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from connect_app.config import Settings
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId
from connect_app.indexing.scheduler import start_integration
from connect_app.integrations import NewIntegration, create_integration
from connect_app.models import IndexRun, Repository
from tests.indexing.scheduling_support import (
    app_without_redis,
    index_jobs,
    make_integration,
    make_repos,
    make_tenant,
)
from tests.support.git_fixtures import ServedRepo
from tests.support.process_env import app_env
from workers.dispatcher import HEARTBEAT_KEY, PRUNE_KEY, Dispatcher

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_the_dispatcher_thread_starts_ticks_and_stops(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        (rid,) = make_repos(session, make_integration(session, make_tenant(session)), 1)
        session.commit()
    dispatcher = Dispatcher(app, interval=0.05).start()
    try:
        assert wait_for(lambda: dispatcher.ticks >= 3)
        with app.app_context():
            assert index_jobs() == [f"index-{rid}"]
            assert redis_conn.client.get(HEARTBEAT_KEY) is not None
            assert redis_conn.client.get(PRUNE_KEY) is not None  # pruned once for this hour
    finally:
        started = time.monotonic()
        dispatcher.stop()
    assert time.monotonic() - started < 2
    assert not dispatcher.running
    ticks = dispatcher.ticks
    time.sleep(0.2)
    assert dispatcher.ticks == ticks


def test_a_tick_survives_redis_being_down(app: Flask, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    with app_without_redis(settings) as broken:
        dispatcher = Dispatcher(broken, interval=0.05)
        assert dispatcher.tick() == 0
        assert dispatcher.tick() == 0
    warnings = [r for r in caplog.records if "dispatch failed" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per tick


def _worker_env(app: Flask, settings: Settings, tmp_path: Path) -> dict[str, str]:
    with app.app_context():
        return app_env(settings, instance_path=tmp_path)


def _start_worker(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    log = (tmp_path / "worker.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "workers", "--dispatch-interval", "0.2", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen[bytes], tmp_path: Path) -> None:
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_python_m_workers_dispatches_and_stops_on_sigterm(app: Flask, settings: Settings, tmp_path: Path) -> None:
    with app.app_context():
        session = db.session()
        (rid,) = make_repos(session, make_integration(session, make_tenant(session)), 1)
        session.commit()
    # only the maintenance queue: the index job it enqueues stays visible to this test
    proc = _start_worker(_worker_env(app, settings, tmp_path), tmp_path, "--queues", "maintenance")
    try:
        with app.app_context():
            log_tail = lambda: (tmp_path / "worker.log").read_text()[-3000:]  # noqa: E731
            assert wait_for(lambda: redis_conn.client.get(HEARTBEAT_KEY) is not None, timeout=30), log_tail()
            assert wait_for(lambda: f"index-{rid}" in index_jobs()), log_tail()
            session = db.session()
            assert session.get(Repository, rid, populate_existing=True).status == "queued"  # type: ignore[union-attr]
    finally:
        _stop(proc, tmp_path)


@pytest.mark.slow
def test_a_new_integration_is_discovered_and_indexed_by_python_m_workers(
    app: Flask, settings: Settings, tmp_path: Path, git_repo: ServedRepo
) -> None:
    """End to end through real processes: start_integration -> discovery job -> initial
    index job (the engine, in RQ's forked work horse next to the dispatcher thread)."""
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        integration = create_integration(
            session,
            tenant.id,
            NewIntegration(
                provider=ProviderId.GIT,
                credentials=Credentials(
                    AuthType.PASSWORD, username=git_repo.server.username, password=git_repo.server.password
                ),
                display_name="plain",
                base_url=git_repo.url,
            ),
        )
        session.commit()
        assert start_integration(session, integration)
    proc = _start_worker(_worker_env(app, settings, tmp_path), tmp_path)
    try:
        with app.app_context():

            def indexed() -> bool:
                db.session.remove()
                repo = db.session().scalars(select(Repository)).first()
                return repo is not None and repo.last_indexed_at is not None

            assert wait_for(indexed, timeout=90), (tmp_path / "worker.log").read_text()[-4000:]
            session = db.session()
            runs = session.scalars(select(IndexRun).order_by(IndexRun.id)).all()
            assert [(r.kind, r.trigger, r.status) for r in runs] == [
                ("discover", "initial", "done"),
                ("index", "initial", "done"),
            ]
            assert runs[1].commits_seen > 0
    finally:
        _stop(proc, tmp_path)
