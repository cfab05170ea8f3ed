"""The indexing engine against real repositories served by ``git http-backend`` on loopback:
full and incremental indexes, rewritten history, resuming a crashed walk, pull requests,
and how host errors end a run."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from connect_app.errors import HostUnavailable, RateLimited
from connect_app.extensions import redis_conn
from connect_app.hosts.base import AuthType, Credentials
from connect_app.indexing import history, pull_requests, queueing, sync
from connect_app.indexing.mirror import mirror_path, refs_unchanged
from connect_app.integrations import encode_credentials
from connect_app.models import (
    Commit,
    IntegrationStatus,
    PullRequestRecord,
    Repository,
    RepositoryStatus,
    RunStatus,
    Trigger,
    utcnow,
)
from connect_app.runtime import runtime
from tests.indexing import sync_support
from tests.indexing.sync_support import (
    T0,
    PullRequestGit,
    add,
    crash_after,
    index,
    last_run,
    pr,
    pr_links,
    pusher,
    sha_of,
)
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import GitHttpServer, RepoBuilder, run_git
from tests.support.indexing_fixtures import IndexingEnv, rev_list_all

REAL_WRITE = history.write_commits

history_template = sync_support.history_template  # fixtures
source = sync_support.source
pr_host = sync_support.pr_host
small_batches = sync_support.small_batches
bulk_source = sync_support.bulk_source


# --------------------------------------------------------------------------- full index


def test_full_index_matches_the_source(indexing: IndexingEnv, source: ServedRepo) -> None:
    indexing.add_projects("ABC", "DEF")
    repo = add(indexing, source, web_url="https://github.com/acme/widgets")
    repo.provider = "github"  # only the stored URLs follow it; git still talks to the loopback server
    indexing.session.commit()

    result = index(repo, Trigger.INITIAL)

    assert result.status == RunStatus.DONE.value, result
    expected = rev_list_all(source.path)
    assert set(indexing.commit_shas(repo)) == expected
    indexing.assert_no_duplicates(repo)
    # Branches and tags as on the server; annotated tags peeled to their commit.
    heads = run_git("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads", cwd=source.path)
    assert indexing.branches(repo) == dict(line.split(" ") for line in heads.splitlines())
    assert indexing.tags(repo) == {t: sha_of(source, f"{t}^{{commit}}") for t in ("v0.1", "v1.0", "v1.1")}

    # Links: keys of known projects only (XYZ is not a project of this site; UTF-8 never was).
    links = indexing.links(repo)
    by_message = {(ref, key) for kind, ref, key, source_ in links if kind == "commit"}
    log = run_git("log", "--all", "--format=%H %s", cwd=source.path).splitlines()
    subject = {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in log}
    assert by_message == {
        (subject["ABC-1 initial import"], "ABC-1"),
        (subject["ABC-2 add docs"], "ABC-2"),
        (subject["ABC-2 add docs"], "ABC-3"),
        (subject["More work on [ABC-12]"], "ABC-12"),
        (subject["DEF-7: unicode \u00e9\u00e8 and\ttabs, UTF-8 is not a key"], "DEF-7"),
        (subject["DEF-8 second on the release branch"], "DEF-8"),
    }
    assert {(ref, key, s) for kind, ref, key, s in links if kind == "branch"} == {
        ("feature/abc-12-fix", "ABC-12", "branch_name")
    }
    assert not any(key.startswith("XYZ") for _, _, key, _ in links)

    # The run says what it did; the repository is ready for cheap no-change checks.
    run = last_run(indexing, repo)
    assert (run.status, run.trigger, run.error) == ("done", "initial", None)
    assert run.commits_seen == len(expected) == result.commits_seen
    assert run.commits_linked == 5 and run.links_created == 7 and run.branches_seen == 4
    repo = indexing.reload(repo)
    assert repo.status == RepositoryStatus.OK.value and repo.last_error is None
    assert repo.commit_count == len(expected)
    assert repo.walk_state is None and repo.indexed_tips
    assert repo.last_indexed_at is not None and repo.last_changed_at is not None
    assert repo.next_index_at is not None and repo.next_index_at > repo.last_indexed_at  # scheduler.schedule_next
    assert refs_unchanged(repo)
    # URLs come from the web URL; the mirror is blobless.
    main = sha_of(source, "main")
    assert indexing.branch_urls(repo)["feature/abc-12-fix"] == "https://github.com/acme/widgets/tree/feature/abc-12-fix"
    url = indexing.session.scalar(select(Commit.url).where(Commit.repository_id == repo.id, Commit.sha == main))
    assert url == f"https://github.com/acme/widgets/commit/{main}"
    assert source.server.filter_requested

    # Commit fields as git has them; dates stored so that the database compares them right
    # (SQLite compares the stored text: it must be the ORM's own format).
    (merge_sha,) = run_git("log", "--all", "--merges", "--format=%H", cwd=source.path).split()
    merge = indexing.session.scalars(
        select(Commit).where(Commit.repository_id == repo.id, Commit.sha == merge_sha)
    ).one()
    timestamp = int(run_git("log", "-1", "--format=%ct", merge_sha, cwd=source.path))
    assert merge.committed_at == datetime.fromtimestamp(timestamp, UTC) and merge.parent_count == 2
    assert (merge.author_name, merge.files_changed, merge.message) == (
        "Ada Lovelace",
        0,
        "Merge branch 'feature/abc-12-fix'",
    )
    later = set(run_git("log", "--all", "--format=%H", f"--since={timestamp}", cwd=source.path).split())
    query = select(Commit.sha).where(Commit.repository_id == repo.id, Commit.committed_at >= merge.committed_at)
    assert merge_sha in later and set(indexing.session.scalars(query)) == later


# --------------------------------------------------------------------------- incremental


def test_incremental_index_walks_only_new_commits(indexing: IndexingEnv, source: ServedRepo) -> None:
    indexing.add_projects("ABC", "DEF")
    repo = add(indexing, source)
    index(repo)
    first_change = indexing.reload(repo).last_changed_at
    before = rev_list_all(source.path)

    b = pusher(source)
    b.commit("ABC-20 new on main", branch="main")
    b.commit("ABC-21 new on a new branch", branch="feature/ABC-21-x")
    b.publish()
    result = index(repo, Trigger.WEBHOOK)

    after = rev_list_all(source.path)
    assert len(after - before) == 2
    run = last_run(indexing, repo)
    assert (run.status, run.commits_seen, run.commits_linked, run.links_created) == ("done", 2, 2, 3)
    assert result.commits_seen == 2 and result.branches_seen == 5
    assert set(indexing.commit_shas(repo)) == after
    indexing.assert_no_duplicates(repo)
    repo = indexing.reload(repo)
    assert repo.commit_count == len(after)
    assert ("branch", "feature/ABC-21-x", "ABC-21", "branch_name") in indexing.links(repo)
    assert first_change is not None and repo.last_changed_at is not None and repo.last_changed_at > first_change

    # Nothing new: nothing walked, nothing written, "last changed" stays.
    assert refs_unchanged(repo)
    changed_at = repo.last_changed_at
    result = index(repo, Trigger.SCHEDULED)
    assert (result.status, result.commits_seen, result.links_created) == ("done", 0, 0)
    assert indexing.reload(repo).last_changed_at == changed_at


def test_deleted_refs_and_force_push(indexing: IndexingEnv, source: ServedRepo) -> None:
    repo = add(indexing, source)  # no Jira projects stored yet: every valid key is linked
    index(repo)
    assert ("branch", "XYZ-5-spike", "XYZ-5", "branch_name") in indexing.links(repo)
    old = rev_list_all(source.path)
    old_release = sha_of(source, "release/1.x")

    run_git("update-ref", "-d", "refs/heads/XYZ-5-spike", cwd=source.path)
    run_git("update-ref", "-d", "refs/tags/v0.1", cwd=source.path)
    b = pusher(source)
    b.checkout("release/1.x")
    b.git("reset", "--quiet", "--hard", "HEAD~1")
    b.commit("DEF-9 the release branch, rewritten")
    b.git("push", "--quiet", "--force", "origin", "release/1.x")
    assert not refs_unchanged(indexing.reload(repo))

    result = index(repo)

    assert result.status == "done" and result.commits_seen == 1
    new = rev_list_all(source.path)
    # Commits rewritten away stay indexed (they existed and may be mentioned in Jira); nothing is missing.
    assert set(indexing.commit_shas(repo)) == old | new
    indexing.assert_no_duplicates(repo)
    branches = indexing.branches(repo)
    assert "XYZ-5-spike" not in branches and branches["release/1.x"] == sha_of(source, "release/1.x") != old_release
    assert "v0.1" not in indexing.tags(repo)
    assert not any(kind == "branch" and ref == "XYZ-5-spike" for kind, ref, _, _ in indexing.links(repo))
    assert refs_unchanged(indexing.reload(repo))


def test_empty_repository(indexing: IndexingEnv, git_server: GitHttpServer, git_repo_name: str) -> None:
    git_server.add_repo(git_repo_name)
    repo = indexing.add_repository(git_server.url_for(git_repo_name), password=git_server.password)
    result = index(repo)
    assert (result.status, result.commits_seen, result.branches_seen) == ("done", 0, 0)
    assert indexing.reload(repo).status == RepositoryStatus.OK.value


def test_mirror_is_recloned_when_broken(indexing: IndexingEnv, source: ServedRepo) -> None:
    repo = add(indexing, source)
    index(repo)
    path = mirror_path(repo)
    (path / "HEAD").unlink()  # a disk cleaner, a half-restored backup...
    b = pusher(source)
    b.commit("ABC-30 after the damage", branch="main")
    b.publish()
    assert index(repo).status == "done"
    assert set(indexing.commit_shas(repo)) == rev_list_all(source.path)


# --------------------------------------------------------------------------- resume


def test_crashed_walk_resumes_without_gaps_or_duplicates(
    indexing: IndexingEnv, bulk_source: ServedRepo, small_batches: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = add(indexing, bulk_source)
    crash_after(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        index(repo)
    assert not prefetch_threads()  # the background reader stopped with the walk

    repo = indexing.reload(repo)
    assert repo.walk_state is not None and repo.walk_state["done"] == 3 * small_batches
    assert repo.commit_count == len(indexing.commit_shas(repo)) == 3 * small_batches
    assert repo.status == RepositoryStatus.FAILED.value
    crashed = last_run(indexing, repo)
    assert crashed.status == "failed" and "internal error (RuntimeError)" in (crashed.error or "")
    assert crashed.commits_seen == 3 * small_batches  # progress was committed with each batch

    # Meanwhile someone pushed: the rerun finishes the pending walk, then walks the new commits.
    b = RepoBuilder(bulk_source.path)
    b.commit("ABC-999 pushed while the worker was down", branch="main")
    b.publish()
    monkeypatch.undo()  # the real write_commits again (and the default batch size)
    result = index(repo)

    expected = rev_list_all(bulk_source.path)
    assert result.status == "done" and result.commits_seen == len(expected) - 3 * small_batches
    assert set(indexing.commit_shas(repo)) == expected
    indexing.assert_no_duplicates(repo)
    repo = indexing.reload(repo)
    assert repo.walk_state is None and repo.commit_count == len(expected) == 601


def test_a_git_failure_while_reading_ahead_fails_the_run_and_keeps_the_cursor(
    indexing: IndexingEnv, bulk_source: ServedRepo, small_batches: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history is read in a background thread: its errors still end the run the usual way."""
    repo = add(indexing, bulk_source)
    real, seen = history.CommitRows.__call__, {"n": 0}

    def dies_midway(self: history.CommitRows, record: Any) -> history.PreparedCommit:
        seen["n"] += 1
        if seen["n"] > 2 * small_batches + 10:
            raise HostUnavailable("git log: gave up after 3600s")
        return real(self, record)

    monkeypatch.setattr(history.CommitRows, "__call__", dies_midway)
    result = index(repo)

    assert result.status == "failed" and "gave up" in (result.error or "")
    assert not prefetch_threads()
    repo = indexing.reload(repo)
    assert repo.walk_state is not None and repo.walk_state["done"] == 2 * small_batches
    assert len(indexing.commit_shas(repo)) == repo.commit_count == 2 * small_batches
    monkeypatch.undo()
    assert index(repo).status == "done"
    assert set(indexing.commit_shas(repo)) == rev_list_all(bulk_source.path)
    indexing.assert_no_duplicates(repo)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "history-prefetch"]


def test_a_wrong_skip_count_costs_a_rewrite_never_a_gap(
    indexing: IndexingEnv, bulk_source: ServedRepo, small_batches: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = add(indexing, bulk_source)
    crash_after(monkeypatch, 2)
    with pytest.raises(RuntimeError):
        index(repo)
    monkeypatch.setattr(history, "write_commits", REAL_WRITE)
    repo = indexing.reload(repo)
    repo.walk_state = {**repo.walk_state, "done": repo.walk_state["done"] + 75}  # claims 75 more than stored
    indexing.session.commit()

    assert index(repo).status == "done"
    assert set(indexing.commit_shas(repo)) == rev_list_all(bulk_source.path)
    indexing.assert_no_duplicates(repo)
    assert indexing.reload(repo).commit_count == 600


# --------------------------------------------------------------------------- pull requests


def test_pull_requests_and_their_links(indexing: IndexingEnv, source: ServedRepo, pr_host: PullRequestGit) -> None:
    indexing.add_projects("ABC", "DEF")
    repo = add(indexing, source)
    pr_host.prs = [
        pr(1, "ABC-1 fix the thing", minutes=1, description="Also ABC-1 and DEF-2; XYZ-3 is elsewhere"),
        pr(2, "Tidy up", minutes=5, source="feature/def-4-tidy"),
        pr(3, "No keys", minutes=3, description="none\x00here"),
    ]

    result = index(repo)

    assert result.status == "done" and result.pull_requests_seen == 3
    assert pr_host.asked == [None]
    rows = indexing.session.scalars(select(PullRequestRecord).where(PullRequestRecord.repository_id == repo.id))
    assert {(p.external_id, p.title, p.state, p.source_branch) for p in rows} == {
        ("1", "ABC-1 fix the thing", "OPEN", "topic"),
        ("2", "Tidy up", "OPEN", "feature/def-4-tidy"),
        ("3", "No keys", "OPEN", "topic"),
    }
    # One link per key and pull request, from the first place it was found (title, description, branch).
    assert pr_links(indexing, repo) == {
        ("1", "ABC-1", "title"),
        ("1", "DEF-2", "description"),
        ("2", "DEF-4", "branch_name"),
    }
    assert indexing.reload(repo).pull_requests_synced_at == T0 + timedelta(minutes=5)

    # Next run: asks only for what changed since the cursor (with a small overlap); an edited
    # title gains and loses keys.
    pr_host.prs = [pr(1, "DEF-6 renamed", minutes=9), pr(2, "Tidy up", minutes=5, source="feature/def-4-tidy")]
    result = index(repo)
    assert pr_host.asked[-1] == T0 + timedelta(minutes=5) - pull_requests.PR_OVERLAP
    assert result.pull_requests_seen == 2 and result.links_created == 1
    assert pr_links(indexing, repo) == {("1", "DEF-6", "title"), ("2", "DEF-4", "branch_name")}
    assert indexing.reload(repo).pull_requests_synced_at == T0 + timedelta(minutes=9)


def test_rate_limit_pauses_the_repository_until_the_reset(
    indexing: IndexingEnv, source: ServedRepo, pr_host: PullRequestGit
) -> None:
    repo = add(indexing, source)
    reset_at = utcnow().replace(microsecond=0) + timedelta(minutes=17)
    pr_host.prs = [pr(1, "ABC-1 one", minutes=1), pr(2, "ABC-2 two", minutes=2)]
    pr_host.fail = RateLimited("GitHub: API rate limit exceeded", reset_at=reset_at)

    result = index(repo)

    assert result.status == RunStatus.RATE_LIMITED.value
    run = last_run(indexing, repo)
    assert run.status == "rate_limited" and run.rate_limited_until == reset_at and "rate limit" in (run.error or "")
    repo = indexing.reload(repo)
    assert repo.status == RepositoryStatus.RATE_LIMITED.value and repo.next_index_at == reset_at
    # The history is indexed all the same; the pull request cursor did not move past unread pages.
    assert set(indexing.commit_shas(repo)) == rev_list_all(source.path)
    assert repo.pull_requests_synced_at is None
    assert indexing.integration(repo).status == IntegrationStatus.ACTIVE.value
    # The budget is the credential's: the scheduler dispatches nothing for it until the reset.
    key = indexing.integration(repo).credential_key
    assert queueing.paused_credentials(redis_conn.client, [key], now=utcnow()) == {key: reset_at}


# --------------------------------------------------------------------------- errors


def test_wrong_password_fails_the_run_without_leaking_it(indexing: IndexingEnv, source: ServedRepo) -> None:
    repo = indexing.add_repository(source.url, password="Wrong-Pass-42")

    result = index(repo)

    assert result.status == "failed"
    run = last_run(indexing, repo)
    repo = indexing.reload(repo)
    assert run.status == "failed" and "refused the username/password or token" in (run.error or "")
    assert repo.status == RepositoryStatus.FAILED.value and repo.last_error == run.error
    for text in (run.error, repo.last_error, str(result.as_dict())):
        assert "Wrong-Pass-42" not in (text or "") and "Traceback" not in (text or "")
    integration = indexing.integration(repo)
    assert integration.status == IntegrationStatus.AUTH_FAILED.value and integration.status_detail == run.error

    # The admin fixes the password: the next run succeeds and the integration is active again.
    fixed = Credentials(AuthType.PASSWORD, username="alice", password=source.server.password)
    integration.credentials_encrypted = runtime().secrets.encrypt(encode_credentials(fixed))
    indexing.session.commit()
    assert index(repo).status == "done"
    integration = indexing.integration(indexing.reload(repo))
    assert (integration.status, integration.status_detail) == (IntegrationStatus.ACTIVE.value, None)


def test_unreachable_server_fails_the_run(indexing: IndexingEnv) -> None:
    repo = indexing.add_repository("http://127.0.0.1:9/nothing.git", password="pw")
    result = index(repo)
    assert result.status == "failed" and "could not be reached" in (result.error or "")
    assert indexing.reload(repo).status == RepositoryStatus.FAILED.value
    assert last_run(indexing, repo).finished_at is not None


# --------------------------------------------------------------------------- one run at a time


def test_a_repository_is_never_indexed_twice_at_once(indexing: IndexingEnv, source: ServedRepo) -> None:
    from connect_app.indexing.runs import queue_run

    repo = add(indexing, source)
    key = f"gcj:index-lock:{repo.id}"
    redis_conn.client.set(key, "another-machine:4242:token", px=60_000)
    queued = queue_run(
        indexing.session,
        tenant_id=repo.tenant_id,
        integration_id=repo.integration_id,
        repository_id=repo.id,
        trigger=Trigger.WEBHOOK,
    )
    indexing.session.commit()

    result = index(repo, Trigger.WEBHOOK, run_id=queued.id)

    assert (result.status, result.note, result.run_id) == ("skipped", "already running", queued.id)
    assert last_run(indexing, repo).status == "done" and indexing.commit_shas(repo) == []
    assert indexing.reload(repo).reindex_requested_at is not None  # the scheduler runs it again
    assert redis_conn.client.get(key) == b"another-machine:4242:token"  # not ours to release

    redis_conn.client.delete(key)
    assert index(repo).status == "done"
    assert redis_conn.client.get(key) is None  # released


def test_a_lock_left_by_a_dead_process_is_taken_over(indexing: IndexingEnv, source: ServedRepo) -> None:
    import socket
    import subprocess
    import sys

    repo = add(indexing, source)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    redis_conn.client.set(f"gcj:index-lock:{repo.id}", f"{socket.gethostname()}:{dead.pid}:x", px=60_000)
    assert index(repo).status == "done"


def test_reindex_requests_during_a_run_are_left_for_the_scheduler(
    indexing: IndexingEnv, source: ServedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    from connect_app.extensions import db

    repo = add(indexing, source)
    repo.reindex_requested_at = utcnow() - timedelta(minutes=1)
    indexing.session.commit()
    assert index(repo).status == "done"
    assert indexing.reload(repo).reindex_requested_at is None  # answered by that run

    real = sync.mirror.ensure_mirror

    def push_arrives(*args: Any, **kwargs: Any) -> bool:
        with db.engine.begin() as conn:  # a webhook, on its own connection, mid-run
            conn.execute(update(Repository).where(Repository.id == repo.id).values(reindex_requested_at=utcnow()))
        return real(*args, **kwargs)

    monkeypatch.setattr(sync.mirror, "ensure_mirror", push_arrives)
    assert index(repo).status == "done"
    assert indexing.reload(repo).reindex_requested_at is not None


def test_a_disabled_repository_is_skipped(indexing: IndexingEnv, source: ServedRepo) -> None:
    repo = add(indexing, source)
    repo.enabled, repo.status = False, RepositoryStatus.QUEUED.value  # disabled after it was queued
    indexing.session.commit()

    result = index(repo)

    assert (result.status, result.note) == ("skipped", "the repository is disabled or removed")
    assert indexing.reload(repo).status == RepositoryStatus.NEW.value  # not left "queued"
    assert indexing.commit_shas(repo) == [] and indexing.runs(repo) == []
