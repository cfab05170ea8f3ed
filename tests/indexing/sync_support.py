"""Shared by the engine's tests (test_sync, test_history, test_pull_requests, test_relink, and
tests/jira/test_projects): a rich served history, helpers to index it, a host wrapper that
lists pull requests the test controls, and content written straight to the tables. Fixtures
are imported into the test modules that use them."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import RateLimited
from connect_app.hosts.base import Capability, PullRequest, PullRequestState, RemoteRepository
from connect_app.indexing import history, store, sync
from connect_app.indexing.links import LinkBuilder, insert_links, project_filter
from connect_app.integrations import host_for
from connect_app.models import Branch, Commit, IndexRun, PullRequestRecord, Repository, Trigger, utcnow
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import (
    BASE_TIME,
    CommitSpec,
    GitHttpServer,
    RepoBuilder,
    make_bulk_repo,
    make_repo,
    run_git,
)
from tests.support.indexing_fixtures import IndexingEnv

# A richer history than DEFAULT_HISTORY: two feature branches merged, a release branch,
# lightweight and annotated tags, keys of known and unknown projects in messages and branch names.
HISTORY: tuple[CommitSpec, ...] = (
    CommitSpec("ABC-1 initial import", files={"README.md": "hello\n", "src/app.py": "print(1)\n"}),
    CommitSpec("ABC-2 add docs\n\nLonger body mentioning XYZ-9 and ABC-3.", files={"docs/index.md": "# d\n"}),
    CommitSpec("start the fix", branch="feature/abc-12-fix", files={"src/app.py": "print(2)\n"}),
    CommitSpec("More work on [ABC-12]", branch="feature/abc-12-fix", author=("Bob", "bob@example.com")),
    CommitSpec("Unrelated change on main", files={"README.md": "hello world\n"}, tags=("v0.1",)),
    CommitSpec("Merge branch 'feature/abc-12-fix'", merge="feature/abc-12-fix", tags=("v1.0:release 1.0",)),
    CommitSpec("DEF-7: unicode \u00e9\u00e8 and\ttabs, UTF-8 is not a key", branch="release/1.x"),
    CommitSpec("DEF-8 second on the release branch", branch="release/1.x", tags=("v1.1:hotfix",)),
    CommitSpec("XYZ-5 work on an unknown project", branch="XYZ-5-spike"),
    CommitSpec("no key at all", branch="main"),
)


@pytest.fixture(scope="session")
def history_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HISTORY built once (dozens of git commands); each test serves its own copy."""
    path = tmp_path_factory.mktemp("history") / "template.git"
    make_repo(path, HISTORY)
    return path


@pytest.fixture
def source(git_server: GitHttpServer, git_repo_name: str, history_template: Path) -> ServedRepo:
    path = git_server.add_repo(git_repo_name, lambda p: shutil.copytree(history_template, p))
    return ServedRepo(git_repo_name, git_server.url_for(git_repo_name), path, None, git_server)  # type: ignore[arg-type]


def pusher(source: ServedRepo) -> RepoBuilder:
    """A work tree of ``source`` to commit in and push from (commit dates after HISTORY's)."""
    return RepoBuilder(source.path, clock=BASE_TIME + 86_400)


def add(indexing: IndexingEnv, source: ServedRepo, **kw: Any) -> Repository:
    return indexing.add_repository(source.url, password=source.server.password, **kw)


def index(repo: Repository, trigger: Trigger = Trigger.MANUAL, run_id: int | None = None) -> sync.IndexResult:
    return sync.run_index(repo.id, trigger, run_id)


def last_run(indexing: IndexingEnv, repo: Repository) -> IndexRun:
    return indexing.runs(repo)[-1]


def sha_of(source: ServedRepo, rev: str) -> str:
    return run_git("rev-parse", rev, cwd=source.path).strip()


# --------------------------------------------------------------------------- crashes


@pytest.fixture
def small_batches(app: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    rt = app.extensions["git_connect"]
    monkeypatch.setitem(
        app.extensions, "git_connect", replace(rt, settings=rt.settings.with_overrides(index_batch_size=50))
    )
    return 50


def crash_after(monkeypatch: pytest.MonkeyPatch, batches: int) -> None:
    """Make the (batches + 1)-th commit batch die before it is committed, like a killed worker."""
    real, calls = history.write_commits, {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> tuple[int, int, int]:
        calls["n"] += 1
        if calls["n"] > batches:
            raise RuntimeError("worker died")
        return real(*args, **kwargs)

    monkeypatch.setattr(history, "write_commits", flaky)


@pytest.fixture
def bulk_source(git_server: GitHttpServer, git_repo_name: str) -> ServedRepo:
    path = git_server.add_repo(git_repo_name, lambda p: make_bulk_repo(p, 600, branches=3))
    return ServedRepo(git_repo_name, git_server.url_for(git_repo_name), path, None, git_server)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pull requests


class PullRequestGit:
    """The real plain-git host (git still goes to the loopback server) that also lists pull
    requests from a list the test controls, the way an API host would: newest update first,
    optionally failing with ``fail`` after the first one. ``hidden_when_incremental`` are
    external ids an incremental listing (``updated_since`` given) never returns, however
    recently they were updated: a host whose "newest first" is by creation date."""

    def __init__(self) -> None:
        self._inner: Any = None
        self.prs: list[PullRequest] = []
        self.fail: RateLimited | None = None
        self.asked: list[datetime | None] = []
        self.hidden_when_incremental: set[str] = set()

    def wrap(self, inner: Any) -> PullRequestGit:
        self._inner = inner
        self.info = replace(inner.info, capabilities=inner.info.capabilities | {Capability.PULL_REQUESTS})
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def list_pull_requests(
        self, repo: RemoteRepository, *, updated_since: datetime | None = None
    ) -> Iterator[PullRequest]:
        self.asked.append(updated_since)
        for n, pr in enumerate(sorted(self.prs, key=lambda p: p.updated_at, reverse=True)):
            if self.fail is not None and n == 1:
                raise self.fail
            if updated_since is not None and pr.external_id in self.hidden_when_incremental:
                continue
            if updated_since is None or pr.updated_at >= updated_since:
                yield pr


T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def pr(
    number: int,
    title: str,
    *,
    minutes: int,
    description: str = "",
    source: str = "topic",
    state: PullRequestState = PullRequestState.OPEN,
) -> PullRequest:
    return PullRequest(
        external_id=str(number),
        title=title,
        state=state,
        source_branch=source,
        target_branch="main",
        url=f"https://git.example.com/pulls/{number}",
        updated_at=T0 + timedelta(minutes=minutes),
        description=description,
        author="ada",
        created_at=T0,
    )


@pytest.fixture
def pr_host(monkeypatch: pytest.MonkeyPatch) -> PullRequestGit:
    host = PullRequestGit()
    monkeypatch.setattr(sync, "host_for", lambda integration: host.wrap(host_for(integration)))
    return host


def pr_links(indexing: IndexingEnv, repo: Repository) -> set[tuple[str, str, str]]:
    return {(ref, key, source) for kind, ref, key, source in indexing.links(repo) if kind == "pull_request"}


# --------------------------------------------------------------------------- stored content

Link = tuple[str, str, str, str]  # kind, ref, issue key, source


def put(
    session: Session,
    repo: Repository,
    *,
    commits: Iterable[tuple[str, str]] = (),
    branches: Iterable[str] = (),
    prs: Iterable[tuple[str, str, str, str]] = (),
) -> None:
    """Store content the way the engine does: rows, and links made with the tenant's project
    filter as it is now. ``commits``: (sha, message); ``prs``: (id, title, description, source branch)."""
    now = utcnow()
    links = LinkBuilder(repo.tenant_id, repo.id, project_filter(session, repo.tenant_id), now)
    base = {"tenant_id": repo.tenant_id, "repository_id": repo.id}
    commit_rows = [
        {
            **base,
            "sha": sha,
            "author_name": "Ada",
            "author_email": "ada@example.com",
            "authored_at": now,
            "committed_at": now,
            "message": message,
            "files_changed": 1,
            "parent_count": 1,
            "url": None,
        }
        for sha, message in commits
    ]
    link_rows: list[dict[str, Any]] = []
    for page in history.chunks(commit_rows, 2000):
        store.insert_ignore(session, Commit, page, keys=("repository_id", "sha"))
        link_rows = [row for c in page for row in links.commit(c["sha"], c["message"])]
        insert_links(session, link_rows)
    names = list(branches)
    if names:
        rows = [{**base, "name": n, "head_sha": "0" * 40, "url": None, "updated_at": now} for n in names]
        store.upsert(session, Branch, rows, keys=("repository_id", "name"), update=("head_sha",))
        insert_links(session, [row for n in names for row in links.branch(n)])
    pr_rows = [
        {
            **base,
            "external_id": ext,
            "title": title,
            "description": body,
            "state": "OPEN",
            "source_branch": branch,
            "target_branch": "main",
            "author": None,
            "url": f"https://git.example.com/pulls/{ext}",
            "created_on_host": now,
            "updated_on_host": now,
        }
        for ext, title, body, branch in prs
    ]
    if pr_rows:
        store.upsert(session, PullRequestRecord, pr_rows, keys=("repository_id", "external_id"), update=("title",))
        insert_links(
            session,
            [
                row
                for r in pr_rows
                for row in links.pull_request(r["external_id"], r["title"], r["description"], r["source_branch"])
            ],
        )
    session.commit()


def expected_links(session: Session, repo: Repository) -> set[Link]:
    """What the engine would have linked from the stored content with today's projects."""
    links = LinkBuilder(repo.tenant_id, repo.id, project_filter(session, repo.tenant_id), utcnow())
    rows: list[dict[str, Any]] = []
    for sha, message in session.execute(select(Commit.sha, Commit.message).where(Commit.repository_id == repo.id)):
        rows += links.commit(sha, message)
    for (name,) in session.execute(select(Branch.name).where(Branch.repository_id == repo.id)):
        rows += links.branch(name)
    pr_ = PullRequestRecord
    query = select(pr_.external_id, pr_.title, pr_.description, pr_.source_branch).where(pr_.repository_id == repo.id)
    for ext, title, body, branch in session.execute(query):
        rows += links.pull_request(ext, title, body, branch)
    return {(r["kind"], r["ref"], r["issue_key"], r["source"]) for r in rows}
