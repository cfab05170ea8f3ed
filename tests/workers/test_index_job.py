"""``workers.jobs.index_repository`` as RQ runs it, and a worker killed with SIGKILL mid-index."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import func, select

from connect_app import PROJECT_ROOT
from connect_app.extensions import db, redis_conn
from connect_app.indexing import sync
from connect_app.models import Commit, Repository, RunStatus, Trigger
from tests.support.git_server import GitHttpServer, make_bulk_repo
from tests.support.indexing_fixtures import IndexingEnv, rev_list_all
from tests.support.process_env import app_env
from workers.queues import QueueName

BULK_COMMITS = 20_000
BATCH = 200
KILL_AT = 5_000  # commits stored when the worker is killed (later: less left for the rerun)


def test_the_job_runs_in_an_rq_worker(indexing: IndexingEnv, git_server: GitHttpServer, git_repo_name: str) -> None:
    path = git_server.add_repo(git_repo_name, lambda p: make_bulk_repo(p, 300, branches=2))
    repo = indexing.add_repository(git_server.url_for(git_repo_name), password=git_server.password)
    queue = Queue(QueueName.INDEXING.value, connection=redis_conn.client)

    job = queue.enqueue("workers.jobs.index_repository", repo.id, Trigger.INITIAL.value, result_ttl=60)
    SimpleWorker([queue], connection=redis_conn.client).work(burst=True)

    job.refresh()
    assert job.is_finished, job.latest_result()
    result = job.return_value()
    assert result is not None and result["status"] == "done" and result["commits_seen"] == 300
    assert set(indexing.commit_shas(repo)) == rev_list_all(path)


def stored(repository_id: int) -> int:
    with db.engine.connect() as conn:  # its own connection: sees what the worker committed
        return int(conn.scalar(select(func.count()).where(Commit.repository_id == repository_id)) or 0)


@pytest.mark.slow
def test_a_worker_killed_mid_index_resumes_without_gaps_or_duplicates(
    indexing: IndexingEnv, git_server: GitHttpServer, git_repo_name: str, tmp_path: Path
) -> None:
    path = git_server.add_repo(git_repo_name, lambda p: make_bulk_repo(p, BULK_COMMITS, branches=4))
    expected = rev_list_all(path)
    repo = indexing.add_repository(git_server.url_for(git_repo_name), password=git_server.password)

    code = "import sys; from workers.jobs import index_repository; index_repository(int(sys.argv[1]), 'initial')"
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-c", code, str(repo.id)],
            cwd=PROJECT_ROOT,
            env=app_env(indexing.settings, inherit=False, INDEX_BATCH_SIZE=str(BATCH), LOG_LEVEL="WARNING"),
            start_new_session=True,  # its own process group: the kill takes its git children too
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 60
        while stored(repo.id) < KILL_AT:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker wrote nothing in 60 s"
            time.sleep(0.02)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    at_kill = stored(repo.id)
    assert 0 < at_kill < len(expected), "the worker finished before it was killed: use a bigger repository"
    killed = indexing.reload(repo)
    assert killed.walk_state is not None and killed.status == "indexing"
    assert killed.walk_state["done"] == at_kill  # the cursor was committed with the rows

    result = sync.run_index(repo.id, Trigger.MANUAL)  # takes over the dead worker's lock at once

    assert result.status == "done", result
    assert result.commits_seen == len(expected) - at_kill  # resumed, not restarted
    assert set(indexing.commit_shas(repo)) == expected
    indexing.assert_no_duplicates(repo)
    repo_after: Repository = indexing.reload(repo)
    assert repo_after.commit_count == len(expected) and repo_after.walk_state is None
    first, second = indexing.runs(repo)
    assert first.status == RunStatus.FAILED.value and first.error == sync.ORPHANED
    assert second.status == RunStatus.DONE.value
