"""Fault: a real ``python -m workers`` is killed with SIGKILL while it indexes a real loopback
repository; a new worker finishes the job. Nothing lost, nothing duplicated, the queue drains.

``tests/workers/test_index_job.py`` already kills a bare ``index_repository`` call and resumes
it with ``sync.run_index`` in-process. This test goes through everything production has: the
job enqueued by the scheduler (with its IndexRun row and RQ ``Retry``), RQ's forked work horse
inside ``python -m workers``, the kill of the whole process tree (worker, work horse, RQ
scheduler, ``git``), RQ's own recovery of the abandoned job, and a second worker process.

RQ's recovery is time-based, and its clock is the one thing this test moves forward: after
the kill the job stays ``started`` in ``StartedJobRegistry`` until the dead work horse's
heartbeat lapses (RQ's ``job_monitoring_interval`` + 60 s = 90 s) *and* a worker runs its
registry maintenance (every 10 minutes); the job is then retried through ``Retry`` after 30 s
(``queueing.RETRY_INTERVALS``). :func:`recover_abandoned_jobs` runs the same two RQ steps
with a timestamp an hour ahead instead of waiting those ~11 minutes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job
from sqlalchemy import func, select

from connect_app import PROJECT_ROOT
from connect_app.config import Settings
from connect_app.extensions import db, redis_conn
from connect_app.indexing import queueing, runs, scheduler, sync
from connect_app.models import Commit, IndexRun, IssueLink, RunStatus, Trigger
from tests.integration.fault_support import expected_links
from tests.support.git_server import GitHttpServer, make_bulk_repo
from tests.support.indexing_fixtures import IndexingEnv, rev_list_all
from tests.support.process_env import app_env

pytestmark = pytest.mark.slow

COMMITS = 6_000
BATCH = 100  # INDEX_BATCH_SIZE of the workers: many small transactions, so the kill lands mid-walk
KILL_AT = 1_500  # commits stored when the worker is killed
START_TIMEOUT = 60.0
DRAIN_TIMEOUT = 120.0


def start_worker(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``python -m workers`` on the indexing queue only, without the dispatcher (whose
    housekeeping would queue Jira project refreshes for the test tenant's made-up site)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "workers", "--queues", "indexing", "--no-dispatcher", *args],
            cwd=PROJECT_ROOT,
            env=app_env(settings, inherit=False, INDEX_BATCH_SIZE=str(BATCH), LOG_LEVEL="WARNING"),
            start_new_session=True,  # its own group, apart from pytest (see kill_worker)
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def kill_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``python -m workers`` and everything it started. RQ's work horse calls
    ``setsid()``, so killing the worker's process group alone leaves the horse (and its
    ``git``) running -- and it finishes the job: the whole tree goes, as in a container kill.

    Returns once every one of them is gone, reaped included: the orphaned work horse is
    reaped by init, not by us, and until then its pid still answers ``kill(pid, 0)``, so
    the index lock it held would not look abandoned yet."""
    tree = process_tree(proc.pid)
    for pid in tree:
        for kill in (os.killpg, os.kill):  # the group first: git children forked a moment ago
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in tree):
        assert time.monotonic() < deadline, "killed processes were not reaped within 30 s"
        time.sleep(0.05)


def stored(repository_id: int) -> int:
    with db.engine.connect() as conn:  # its own connection: sees what the worker committed
        return int(conn.scalar(select(func.count()).where(Commit.repository_id == repository_id)) or 0)


def recover_abandoned_jobs(conn: Redis, queue: Queue) -> None:
    """What RQ does on its own once enough time has passed (see the module docstring):
    a worker's maintenance fails (here: retries) jobs whose work horse stopped sending
    heartbeats, and the RQ scheduler enqueues the retry when its interval is up."""
    later = time.time() + 3600
    queue.started_job_registry.cleanup(timestamp=later)
    scheduled = queue.scheduled_job_registry
    for job_id in scheduled.get_jobs_to_schedule(int(later)):
        queue.enqueue_job(Job.fetch(job_id, connection=conn))
        scheduled.remove(job_id)


def test_a_sigkilled_worker_leaves_nothing_lost_or_duplicated_and_the_queue_drains(
    indexing: IndexingEnv, git_server: GitHttpServer, git_repo_name: str, tmp_path: Path
) -> None:
    path = git_server.add_repo(git_repo_name, lambda p: make_bulk_repo(p, COMMITS, branches=3))
    expected = rev_list_all(path)
    indexing.add_projects("ABC", "DEF")
    repo = indexing.add_repository(git_server.url_for(git_repo_name), password=git_server.password)
    integration = indexing.integration(repo)
    # Nothing for Jira: the index job would otherwise queue a Development panel push.
    integration.features = {**(integration.features or {}), "development_panel": False, "smart_commits": False}
    session = indexing.session
    session.commit()

    conn = redis_conn.client
    queue = Queue(queueing.INDEXING_QUEUE, connection=conn)
    assert scheduler.request_index(session, [repo], Trigger.INITIAL) == 1
    job_id = queueing.index_job_id(repo.id)
    (run,) = indexing.runs(repo)

    log = tmp_path / "workers.log"
    first = start_worker(indexing.settings, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while stored(repo.id) < KILL_AT:
            assert first.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"the worker wrote nothing in {START_TIMEOUT:.0f} s"
            time.sleep(0.02)
    finally:
        kill_worker(first)

    at_kill = stored(repo.id)
    assert 0 < at_kill < len(expected), "the worker finished before it was killed: use a bigger repository"
    killed = indexing.reload(repo)
    assert killed.status == "indexing" and killed.walk_state is not None
    assert killed.walk_state["done"] == at_kill  # rows and cursor committed together, batch by batch
    assert indexing.runs(repo)[0].status == RunStatus.RUNNING.value  # nothing closed it: the process died
    assert Job.fetch(job_id, connection=conn).get_status() == "started"  # abandoned, as RQ sees it

    recover_abandoned_jobs(conn, queue)
    assert queue.count == 1  # the same job, retried (its Retry had attempts left)

    second = start_worker(indexing.settings, log, "--burst")
    try:
        second.wait(timeout=DRAIN_TIMEOUT)
    finally:
        if second.poll() is None:
            kill_worker(second)
    assert second.returncode == 0, log.read_text()[-3000:]

    # Nothing lost, nothing duplicated.
    assert set(indexing.commit_shas(repo)) == expected
    indexing.assert_no_duplicates(repo)
    assert indexing.commit_count(repo) == len(expected)
    links = indexing.session.execute(
        select(IssueLink.kind, IssueLink.ref, IssueLink.issue_key).where(IssueLink.repository_id == repo.id)
    ).all()
    assert len(links) == len(set(links))
    assert {tuple(r) for r in links} == expected_links(path)

    # The repository and its run: the retry resumed the killed attempt of the same run.
    after = indexing.reload(repo)
    assert after.status == "ok" and after.walk_state is None and after.commit_count == len(expected)
    (finished,) = indexing.runs(repo)
    assert finished.id == run.id
    assert finished.status == RunStatus.DONE.value and finished.error is None
    assert finished.attempts == 2  # the killed attempt, then the one that finished
    assert finished.commits_seen == len(expected) - at_kill  # resumed, not restarted
    assert indexing.session.scalar(select(func.count()).select_from(IndexRun)) == 1

    # The queue drained: nothing queued, running, scheduled or failed.
    assert Job.fetch(job_id, connection=conn).get_status() == "finished"
    assert queue.count == 0
    assert queue.started_job_registry.get_job_ids() == []
    assert queue.scheduled_job_registry.get_job_ids() == []
    assert queue.failed_job_registry.get_job_ids() == []


def test_a_retry_that_finds_the_killed_attempts_lock_leaves_its_run_open(
    indexing: IndexingEnv, git_server: GitHttpServer, git_repo_name: str
) -> None:
    """RQ may retry a killed job while the dead attempt's index lock still stands (held from
    another machine until its TTL ends, or by a pid not yet reaped). That retry is skipped as
    "already running" -- and must not close the killed attempt's run as done: nothing
    finished it. Once the lock is gone, the next attempt of the same run resumes it."""
    path = git_server.add_repo(git_repo_name, lambda p: make_bulk_repo(p, 300))
    repo = indexing.add_repository(git_server.url_for(git_repo_name), password=git_server.password)
    session = indexing.session
    run = runs.queue_run(
        session,
        tenant_id=repo.tenant_id,
        integration_id=repo.integration_id,
        repository_id=repo.id,
        trigger=Trigger.INITIAL,
        job_id=queueing.index_job_id(repo.id),
    )
    runs.start_run(session, run)  # the attempt that was killed
    lock_key = f"gcj:index-lock:{repo.id}"
    redis_conn.client.set(lock_key, "another-host:4242:dead", px=60_000)

    skipped = sync.run_index(repo.id, Trigger.INITIAL, run.id)

    assert (skipped.status, skipped.note) == (sync.SKIPPED, "already running")
    (still,) = indexing.runs(repo)
    assert still.status == RunStatus.RUNNING.value and still.finished_at is None
    assert indexing.reload(repo).reindex_requested_at is not None  # asked again, for after it

    redis_conn.client.delete(lock_key)  # its TTL ran out
    result = sync.run_index(repo.id, Trigger.INITIAL, run.id)

    assert result.status == RunStatus.DONE.value and result.run_id == run.id
    (finished,) = indexing.runs(repo)
    assert finished.status == RunStatus.DONE.value and finished.attempts == 2
    assert set(indexing.commit_shas(repo)) == rev_list_all(path)
