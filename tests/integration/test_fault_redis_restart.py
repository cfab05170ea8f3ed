"""Fault: Redis crashes (SIGKILL, no persistence) and comes back empty while signed webhook
deliveries keep arriving. Every delivery is stored once, every repository it names is indexed
(once per delivery when each names its own repository), and the queues drain.

A real ``redis-server`` (``tests/support/redis_process.py``) behind a second app on the test
database; GitHub-signed push deliveries through the real intake; real git over loopback HTTP.

What the code does, and what these tests pin down:

* **Redis down**: a delivery is verified, stored and answered **202** with
  ``"enqueued": false`` (not a 503): the row is the durable record, and the repository's
  ``reindex_requested_at`` is committed too. A redelivery is a **200** ``duplicate`` (the
  unique delivery key), up or down.
* **Redis back**: the periodic dispatcher (``workers.dispatcher.Dispatcher``, the thread of
  ``python -m workers``) hands on every delivery still ``received`` once it is
  ``PENDING_MIN_AGE`` (5 s) old.
* **Jobs Redis lost**: a delivery enqueued *before* the crash is ``enqueued`` in the
  database, but its job died with Redis. The delivery is not handed on again; the
  dispatcher's lost-job reaper finds the repository ``queued`` with no job (after
  ``LOST_JOB_GRACE``, 2 min), fails that run and makes the repository due again at once (a
  job Redis lost was not the repository's fault). Until the reaper runs, those repositories still count as in
  flight: with the default ``MAX_JOBS_PER_CREDENTIAL`` (2) two lost jobs hold back every
  other request of the credential, which stay requested in the database meanwhile. The
  tests pass ``now`` to ``scheduler.dispatch`` to move through those minutes.
* **With an append-only file** (``appendonly yes``) the queued jobs survive the crash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

from connect_app import create_app
from connect_app.config import Settings
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import AuthType, Credentials, ProviderId, RemoteRepository
from connect_app.hosts.github import GitHubHost
from connect_app.indexing import due, queueing, scheduler
from connect_app.integrations import NewIntegration, add_repositories, create_integration, webhook_secret
from connect_app.models import (
    Commit,
    DeliveryStatus,
    IndexRun,
    Repository,
    RepositorySelection,
    RunKind,
    RunStatus,
    WebhookDelivery,
    utcnow,
)
from tests.indexing.scheduling_support import make_tenant
from tests.support.git_server import GitHttpServer, make_bulk_repo
from tests.support.indexing_fixtures import rev_list_all
from tests.support.redis_process import RedisProcess, redis_server_binary
from workers.dispatcher import Dispatcher

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(redis_server_binary() is None, reason="needs the redis-server binary"),
]

PUSH = Path(__file__).resolve().parents[1] / "fixtures" / "github" / "push.json"
REPOSITORIES = 6
COMMITS = 30
EXTERNAL_ID_BASE = 9_100_000
DRAIN_QUEUES = (queueing.WEBHOOKS_QUEUE, queueing.INDEXING_QUEUE)
WAIT_SECONDS = 30.0
STREAM = 36  # deliveries in the stream test (every third is redelivered too)


@pytest.fixture
def fault_app(
    request: pytest.FixtureRequest, app: Flask, settings: Settings, tmp_path: Path
) -> Iterator[tuple[Flask, RedisProcess]]:
    """An app on the test database whose Redis is a ``redis-server`` this test may kill;
    without persistence unless parametrized (indirect) with ``True`` (append-only file).
    (``app`` is requested so the tables are emptied after the test.)"""
    from connect_app import extensions

    appendonly = bool(getattr(request, "param", False))
    saved = extensions.db._default, extensions.redis_conn._default  # create_app re-points them
    with RedisProcess(tmp_path / "redis", appendonly=appendonly) as redis_server:
        faulty = create_app(settings.with_overrides(redis_url=redis_server.url, mirrors_path=tmp_path / "mirrors"))
        try:
            yield faulty, redis_server
        finally:
            with faulty.app_context():
                db.session.remove()
                db.engine.dispose()
            extensions.db._default, extensions.redis_conn._default = saved
            shutil.rmtree(tmp_path / "mirrors", ignore_errors=True)


@dataclass(frozen=True)
class Target:
    repository_id: int
    external_id: int
    path: Path


@dataclass
class Hooks:
    url: str
    secret: str
    targets: list[Target]


def make_hooks(app: Flask, server: GitHttpServer, name: str) -> Hooks:
    with app.app_context():
        session = db.session()
        tenant = make_tenant(session)
        integration = create_integration(
            session,
            tenant.id,
            NewIntegration(
                provider=ProviderId.GITHUB,
                credentials=Credentials(AuthType.PAT, token="ghp_fault_tests_0123456789"),
                display_name="GitHub",
                base_url="http://127.0.0.1:9",  # never called: pull requests are stubbed out
                repository_selection=RepositorySelection.SELECTED,
            ),
        )
        # Nothing for Jira: an index run would otherwise queue a Development panel push.
        integration.features = {**(integration.features or {}), "development_panel": False, "smart_commits": False}
        paths, remotes = [], []
        for i in range(REPOSITORIES):
            repo_name = f"{name}-{i}"
            paths.append(server.add_repo(repo_name, lambda p: make_bulk_repo(p, COMMITS)))
            remotes.append(
                RemoteRepository(
                    external_id=str(EXTERNAL_ID_BASE + i),
                    name=f"acme/{repo_name}",
                    clone_url=server.url_for(repo_name),
                )
            )
        repos = add_repositories(session, integration, remotes)
        session.commit()
        targets = [Target(r.id, EXTERNAL_ID_BASE + i, p) for i, (r, p) in enumerate(zip(repos, paths, strict=True))]
        return Hooks(f"/webhooks/{integration.id}/{integration.webhook_token}", webhook_secret(integration), targets)


def deliver(app: Flask, hooks: Hooks, target: Target, delivery: str) -> tuple[int, dict[str, Any]]:
    """A GitHub push delivery for ``target``'s repository, signed like GitHub signs it."""
    payload = json.loads(PUSH.read_text())
    payload["repository"]["id"] = target.external_id
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hmac.new(hooks.secret.encode(), body, hashlib.sha256).hexdigest(),
        "Content-Type": "application/json",
    }
    response = app.test_client().post(hooks.url, data=body, headers=headers)
    return response.status_code, response.get_json()


def wait_for(condition: Callable[[], bool], timeout: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def received(app: Flask) -> int:
    with app.app_context():
        count = db.session().scalar(select(func.count()).where(WebhookDelivery.status == DeliveryStatus.RECEIVED.value))
        db.session.remove()
        return int(count or 0)


def no_housekeeping(app: Flask) -> None:
    """Keep the dispatcher to deliveries and due repositories: its once-a-minute housekeeping
    would queue a discovery (GitHub's API) and a Jira project refresh, both off loopback."""
    with app.app_context():
        redis_conn.client.set(scheduler.HOUSEKEEPING_KEY, "1", ex=3600)


def drain(app: Flask) -> None:
    with app.app_context():
        SimpleWorker(list(DRAIN_QUEUES), connection=redis_conn.client).work(burst=True)
        db.session.remove()


def settle(app: Flask, now: datetime) -> None:
    """Dispatch (as of ``now``) and run the jobs, until the dispatcher finds nothing to do."""
    for _ in range(REPOSITORIES + 1):
        with app.app_context():
            enqueued = scheduler.dispatch(now=now)
            db.session.remove()
        drain(app)
        if not enqueued:
            return
    raise AssertionError("the dispatcher kept finding work")


def test_deliveries_survive_a_redis_crash_and_each_is_processed_once(
    fault_app: tuple[Flask, RedisProcess],
    open_git_server: GitHttpServer,
    git_repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, redis_server = fault_app
    monkeypatch.setattr(GitHubHost, "list_pull_requests", lambda self, repo, updated_since=None: iter(()))
    hooks = make_hooks(app, open_git_server, git_repo_name)
    t = hooks.targets
    answers: dict[str, list[tuple[int, dict[str, Any]]]] = {}

    def send(target: Target, delivery: str) -> tuple[int, dict[str, Any]]:
        answer = deliver(app, hooks, target, delivery)
        answers.setdefault(delivery, []).append(answer)
        return answer

    # Redis up: stored and enqueued.
    for target, key in ((t[0], "d-0"), (t[1], "d-1")):
        status, body = send(target, key)
        assert (status, body["status"], body["enqueued"]) == (202, "accepted", True)

    # Redis crashes: its queued jobs go with it. Deliveries are still stored and acknowledged.
    redis_server.stop()
    for target, key in ((t[2], "d-2"), (t[3], "d-3")):
        status, body = send(target, key)
        assert (status, body["status"], body["enqueued"]) == (202, "accepted", False)
    assert send(t[0], "d-0") == (200, {"status": "duplicate"})  # redelivered by the host meanwhile
    assert send(t[2], "d-2") == (200, {"status": "duplicate"})

    # Redis is back, empty.
    redis_server.start()
    with app.app_context():
        assert redis_conn.client.dbsize() == 0
    no_housekeeping(app)
    status, body = send(t[4], "d-4")
    assert (status, body["enqueued"]) == (202, True)
    assert send(t[3], "d-3") == (200, {"status": "duplicate"})
    status, body = send(t[5], "d-5")
    assert (status, body["enqueued"]) == (202, True)

    # The dispatcher thread hands on every delivery Redis missed (once PENDING_MIN_AGE old).
    dispatcher = Dispatcher(app, interval=0.1).start()
    try:
        assert wait_for(lambda: received(app) == 0), "the dispatcher left deliveries pending"
    finally:
        dispatcher.stop()
    lost = {t[0].repository_id, t[1].repository_id}  # their jobs died with Redis
    with app.app_context():
        session = db.session()
        for target in t:  # every push is on record: a job queued, or a request in the database
            repo = session.get(Repository, target.repository_id)
            assert repo is not None and (repo.status == "queued" or repo.reindex_requested_at is not None)
        db.session.remove()
    drain(app)

    # The lost jobs' repositories still look in flight (and take the credential's job slots,
    # MAX_JOBS_PER_CREDENTIAL) until the reaper gives up on them; then the requests go, and
    # the lost repositories are indexed when due again.
    with app.app_context():
        lost_runs = db.session().execute(
            select(IndexRun.repository_id, IndexRun.status).where(IndexRun.repository_id.in_(lost))
        )
        assert {r.repository_id: r.status for r in lost_runs} == dict.fromkeys(lost, RunStatus.QUEUED.value)
        db.session.remove()
    reaped_at = utcnow() + due.LOST_JOB_GRACE + timedelta(minutes=1)
    settle(app, reaped_at)  # reaped, due again at once, and indexed in the same settle
    with app.app_context():
        for repository_id in lost:
            runs = db.session().execute(
                select(IndexRun.status, IndexRun.error)
                .where(IndexRun.repository_id == repository_id)
                .order_by(IndexRun.id)
            ).all()
            assert [(r.status, r.error) for r in runs][:1] == [(RunStatus.FAILED.value, due.LOST_JOB_ERROR)]
            assert runs[-1].status == RunStatus.DONE.value
        db.session.remove()

    with app.app_context():
        session = db.session()
        # Every delivery stored exactly once, and handed on.
        rows = session.execute(
            select(WebhookDelivery.delivery_key, WebhookDelivery.status, WebhookDelivery.enqueued_at)
        ).all()
        assert sorted(r.delivery_key for r in rows) == [f"d-{i}" for i in range(REPOSITORIES)]
        assert {r.status for r in rows} == {DeliveryStatus.ENQUEUED.value}
        assert all(r.enqueued_at is not None for r in rows)
        # Every push indexed: all of each repository's commits, exactly once.
        for target in t:
            shas = list(session.scalars(select(Commit.sha).where(Commit.repository_id == target.repository_id)))
            assert len(shas) == len(set(shas)) and set(shas) == rev_list_all(target.path), target
        # One finished index run per repository; the runs whose jobs Redis lost are closed as failed.
        runs = session.execute(
            select(IndexRun.repository_id, IndexRun.status, IndexRun.error, IndexRun.trigger).where(
                IndexRun.kind == RunKind.INDEX.value
            )
        ).all()
        done = {r.repository_id: r.trigger for r in runs if r.status == RunStatus.DONE.value}
        assert sorted(done) == sorted(x.repository_id for x in t)  # once each (a dict keeps one per key)
        assert len(done) == sum(1 for r in runs if r.status == RunStatus.DONE.value)
        assert {done[x.repository_id] for x in t[2:]} == {"webhook"}
        failed = {r.repository_id: r.error for r in runs if r.status != RunStatus.DONE.value}
        assert failed == dict.fromkeys(lost, due.LOST_JOB_ERROR)
        # The queues drained.
        conn = redis_conn.client
        for name in DRAIN_QUEUES:
            queue = Queue(name, connection=conn)
            assert queue.count == 0, name
            assert StartedJobRegistry(queue=queue).get_job_ids() == [], name
            assert FailedJobRegistry(queue=queue).get_job_ids() == [], name
        db.session.remove()

    # Every answer was a 2xx.
    assert all(status in (200, 202) for replies in answers.values() for status, _ in replies)


@pytest.mark.parametrize("fault_app", [True], indirect=True, ids=["appendonly"])
def test_with_an_append_only_file_queued_jobs_survive_the_crash(
    fault_app: tuple[Flask, RedisProcess],
    open_git_server: GitHttpServer,
    git_repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The other way to run Redis: ``appendonly yes`` (fsync always) keeps the queued job
    through a SIGKILL, so the push is indexed at once, without the reaper's 12 minutes."""
    app, redis_server = fault_app
    monkeypatch.setattr(GitHubHost, "list_pull_requests", lambda self, repo, updated_since=None: iter(()))
    hooks = make_hooks(app, open_git_server, git_repo_name)
    target = hooks.targets[0]
    status, body = deliver(app, hooks, target, "aof-0")
    assert (status, body["enqueued"]) == (202, True)

    redis_server.restart()  # SIGKILL, then start from the append-only file

    with app.app_context():
        assert Queue(queueing.WEBHOOKS_QUEUE, connection=redis_conn.client).job_ids == [
            queueing.index_job_id(target.repository_id)
        ]
    no_housekeeping(app)
    drain(app)
    with app.app_context():
        session = db.session()
        run_rows = session.execute(select(IndexRun.trigger, IndexRun.status)).all()
        assert [tuple(r) for r in run_rows] == [("webhook", RunStatus.DONE.value)]
        shas = set(session.scalars(select(Commit.sha).where(Commit.repository_id == target.repository_id)))
        assert shas == rev_list_all(target.path)
        db.session.remove()


def test_a_stream_of_deliveries_across_a_crash_loses_no_push(
    fault_app: tuple[Flask, RedisProcess],
    open_git_server: GitHttpServer,
    git_repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deliveries keep coming from another thread while Redis is killed and started again
    (requests in flight at the moment it dies included). Every answer is a 2xx, every
    delivery is stored once, and every repository is indexed after the last push naming it."""
    app, redis_server = fault_app
    monkeypatch.setattr(GitHubHost, "list_pull_requests", lambda self, repo, updated_since=None: iter(()))
    hooks = make_hooks(app, open_git_server, git_repo_name)
    answers: list[tuple[str, int, str]] = []
    enqueued: list[bool] = []  # "enqueued" of each accepted delivery, in order
    errors: list[BaseException] = []

    def post_stream() -> None:
        try:
            for i in range(STREAM):
                target = hooks.targets[i % REPOSITORIES]
                status, body = deliver(app, hooks, target, f"s-{i}")
                answers.append((f"s-{i}", status, body.get("status", "")))
                enqueued.append(bool(body.get("enqueued")))
                if i % 3 == 2:  # the host redelivers one it is unsure of
                    status, body = deliver(app, hooks, target, f"s-{i}")
                    answers.append((f"s-{i}", status, body.get("status", "")))
                time.sleep(0.005)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    poster = threading.Thread(target=post_stream, name="webhook-stream")
    poster.start()
    try:
        assert wait_for(lambda: len(answers) >= STREAM // 4 or not poster.is_alive())
        redis_server.stop()
        assert wait_for(lambda: len(answers) >= STREAM // 2 or not poster.is_alive())
        redis_server.start()
        no_housekeeping(app)
    finally:
        poster.join(timeout=WAIT_SECONDS)
    assert not poster.is_alive() and errors == []

    by_key: dict[str, list[tuple[int, str]]] = {}
    for key, status, outcome in answers:
        by_key.setdefault(key, []).append((status, outcome))
    assert set(by_key) == {f"s-{i}" for i in range(STREAM)}
    assert {replies[0] for replies in by_key.values()} == {(202, "accepted")}  # Redis up or down
    redeliveries = [reply for replies in by_key.values() for reply in replies[1:]]
    assert len(redeliveries) == STREAM // 3 and set(redeliveries) == {(200, "duplicate")}
    assert enqueued[0] and not all(enqueued) and enqueued[-1]  # up, down, up again

    dispatcher = Dispatcher(app, interval=0.1).start()
    try:
        assert wait_for(lambda: received(app) == 0), "the dispatcher left deliveries pending"
    finally:
        dispatcher.stop()
    drain(app)
    reaped_at = utcnow() + due.LOST_JOB_GRACE + timedelta(minutes=1)
    settle(app, reaped_at)
    settle(app, reaped_at + due.LOST_JOB_RETRY + timedelta(minutes=1))

    with app.app_context():
        session = db.session()
        keys = list(session.scalars(select(WebhookDelivery.delivery_key)))
        assert sorted(keys) == sorted(by_key)  # each stored exactly once
        statuses = set(session.scalars(select(WebhookDelivery.status)))
        assert statuses == {DeliveryStatus.ENQUEUED.value}
        for target in hooks.targets:
            shas = list(session.scalars(select(Commit.sha).where(Commit.repository_id == target.repository_id)))
            assert len(shas) == len(set(shas)) and set(shas) == rev_list_all(target.path), target
            last_push = max(
                d.received_at
                for d in session.scalars(select(WebhookDelivery))
                if target.repository_id in (d.repository_ids or [])
            )
            last_run = session.scalar(
                select(func.max(IndexRun.started_at)).where(
                    IndexRun.repository_id == target.repository_id, IndexRun.status == RunStatus.DONE.value
                )
            )
            assert last_run is not None and last_run >= last_push, target
        conn = redis_conn.client
        for name in DRAIN_QUEUES:
            queue = Queue(name, connection=conn)
            assert queue.count == 0 and queue.started_job_registry.get_job_ids() == [], name
            assert queue.failed_job_registry.get_job_ids() == [], name
        db.session.remove()
