"""Fault: PostgreSQL drops the indexer's connections in the middle of the history walk.

A second connection runs ``pg_terminate_backend`` on every other backend of the test
database (what a failover, a restart or an idle-connection killer does) while a run over a
real loopback repository is writing: either mid-batch (just before a batch's INSERTs) or
at a batch boundary (everything flushed, just before COMMIT). The run must be recorded as
failed in words, and a second run must resume with nothing lost (every commit of
``git rev-list --all``) and nothing duplicated (exact commit and link sets) through the
same engine: ``pool_pre_ping`` (``connect_app.extensions.make_engine``) replaces the dead
pooled connections.

PostgreSQL only: SQLite has no server connection to lose.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from connect_app.config import Settings
from connect_app.extensions import database_url_for
from connect_app.indexing import history, links, runs, sync
from connect_app.models import IssueLink, Repository, RepositoryStatus, RunStatus, Trigger
from tests.integration.fault_support import expected_links
from tests.support.git_server import GitHttpServer, make_bulk_repo
from tests.support.indexing_fixtures import IndexingEnv, rev_list_all

COMMITS = 1_500
BATCH = 100
KILL_IN_BATCH = 6  # the connections die while the 6th batch is being written

pytestmark = pytest.mark.slow


@pytest.fixture
def postgres(settings: Settings) -> Iterator[Engine]:
    """A connection of its own (no pool) to kill the app's backends from."""
    url = database_url_for(settings)
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (TEST_DATABASE_URL): SQLite has no server connection to drop")
    killer = create_engine(url, poolclass=NullPool)
    yield killer
    killer.dispose()


@pytest.fixture
def small_batches(app: Flask, monkeypatch: pytest.MonkeyPatch) -> int:
    rt = app.extensions["git_connect"]
    monkeypatch.setitem(
        app.extensions, "git_connect", replace(rt, settings=rt.settings.with_overrides(index_batch_size=BATCH))
    )
    return BATCH


def drop_connections(killer: Engine) -> int:
    """Terminate every other backend of this database, and wait until they are gone."""
    with killer.connect() as conn:
        pids = list(
            conn.scalars(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            )
        )
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})  # waits for the exit
    return len(pids)


def drop_mid_batch(monkeypatch: pytest.MonkeyPatch, killer: Engine) -> Callable[[], int]:
    """The connections die inside a batch's transaction, between its commit rows' INSERT and
    its links' INSERT: the second INSERT fails, the first is rolled back with it."""
    real, calls = links.insert_link_values, {"n": 0, "dropped": 0}

    def insert_links(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == KILL_IN_BATCH:
            calls["dropped"] = drop_connections(killer)
        return real(*args, **kwargs)

    monkeypatch.setattr(history, "insert_link_values", insert_links)
    return lambda: calls["dropped"]


def drop_before_commit(monkeypatch: pytest.MonkeyPatch, killer: Engine) -> Callable[[], int]:
    """The connections die once a batch is flushed, just before its COMMIT: the COMMIT fails."""
    real, calls = sync.RepositoryIndexer._commit, {"batches": 0, "dropped": 0}

    def commit(self: sync.RepositoryIndexer, before_commit: Callable[[], None] | None = None) -> None:
        if before_commit is None:  # not a batch of the walk
            return real(self, before_commit)
        calls["batches"] += 1
        if calls["batches"] != KILL_IN_BATCH:
            return real(self, before_commit)

        def then_drop() -> None:
            before_commit()
            calls["dropped"] = drop_connections(killer)

        return real(self, then_drop)

    monkeypatch.setattr(sync.RepositoryIndexer, "_commit", commit)
    return lambda: calls["dropped"]


def test_connections_dropped_between_batches_are_replaced_without_a_failure(
    postgres: Engine,
    indexing: IndexingEnv,
    small_batches: int,
    git_server: GitHttpServer,
    git_repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between two batches the session holds no connection: the pool's pre-ping finds the
    dead one on checkout and opens another. The run never notices."""
    path = git_server.add_repo(git_repo_name, lambda p: make_bulk_repo(p, COMMITS, branches=3))
    indexing.add_projects("ABC", "DEF")
    repo = indexing.add_repository(git_server.url_for(git_repo_name), password=git_server.password)
    real, calls = history.write_commits, {"n": 0, "dropped": 0}

    def write(session: Any, commits: Any) -> tuple[int, int, int]:
        calls["n"] += 1
        if calls["n"] == KILL_IN_BATCH:
            assert not session.in_transaction()  # the previous batch committed; nothing began yet
            calls["dropped"] = drop_connections(postgres)
        return real(session, commits)

    monkeypatch.setattr(history, "write_commits", write)

    result = sync.run_index(repo.id, Trigger.INITIAL)

    assert calls["dropped"] >= 1
    assert result.status == RunStatus.DONE.value and result.commits_seen == COMMITS
    assert set(indexing.commit_shas(repo)) == rev_list_all(path)
    indexing.assert_no_duplicates(repo)
    assert {tuple(r) for r in link_rows(indexing, repo.id)} == expected_links(path)


def link_rows(indexing: IndexingEnv, repository_id: int) -> list[Any]:
    return list(
        indexing.session.execute(
            select(IssueLink.kind, IssueLink.ref, IssueLink.issue_key).where(IssueLink.repository_id == repository_id)
        ).all()
    )


@pytest.mark.parametrize("drop", [drop_mid_batch, drop_before_commit], ids=["mid-batch", "before-commit"])
def test_a_dropped_database_connection_fails_the_run_and_the_retry_loses_nothing(
    drop: Callable[[pytest.MonkeyPatch, Engine], Callable[[], int]],
    postgres: Engine,
    indexing: IndexingEnv,
    small_batches: int,
    git_server: GitHttpServer,
    git_repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = git_server.add_repo(git_repo_name, lambda p: make_bulk_repo(p, COMMITS, branches=3))
    expected = rev_list_all(path)
    indexing.add_projects("ABC", "DEF")
    repo = indexing.add_repository(git_server.url_for(git_repo_name), password=git_server.password)
    repo_id = repo.id
    dropped = drop(monkeypatch, postgres)

    with pytest.raises(DBAPIError) as raised:  # an outage: re-raised so that RQ's Retry runs the job again
        sync.run_index(repo_id, Trigger.INITIAL)
    assert raised.value.connection_invalidated
    assert dropped() >= 1
    monkeypatch.undo()  # the real writes again (and the default batch size)
    repo = indexing.session.get(Repository, repo_id)
    assert repo is not None

    # Failed, in words; the batches committed before the drop are kept, with their cursor.
    (failed,) = indexing.runs(repo)
    assert failed.status == RunStatus.FAILED.value
    assert failed.error == runs.DATABASE_LOST
    stopped = indexing.reload(repo)
    assert stopped.status == RepositoryStatus.FAILED.value and stopped.last_error == runs.DATABASE_LOST
    kept = indexing.commit_count(repo)
    assert kept == (KILL_IN_BATCH - 1) * small_batches  # the batch being written is rolled back whole
    assert stopped.walk_state is not None and stopped.walk_state["done"] == kept

    # The retry, through the same engine (its dead pooled connections are replaced), resumes.
    result = sync.run_index(repo_id, Trigger.MANUAL)
    assert result.status == RunStatus.DONE.value, result
    assert result.commits_seen == len(expected) - kept

    assert set(indexing.commit_shas(repo)) == expected
    indexing.assert_no_duplicates(repo)
    assert indexing.commit_count(repo) == len(expected)
    stored_links = link_rows(indexing, repo_id)
    assert len(stored_links) == len(set(stored_links))
    assert {tuple(r) for r in stored_links} == expected_links(path)
    after = indexing.reload(repo)
    assert after.status == RepositoryStatus.OK.value and after.walk_state is None
    assert after.commit_count == len(expected)
    assert [r.status for r in indexing.runs(repo)] == [RunStatus.FAILED.value, RunStatus.DONE.value]
