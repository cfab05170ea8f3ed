"""index_repository: mirror fetch, history walk with a resumable cursor, refs, pull requests, links.

Public surface (other modules rely on it):

    run_index(repository_id: int, trigger: str | Trigger, run_id: int | None) -> IndexResult
        Runs inside an app context. Creates the IndexRun when run_id is None. Never raises for
        host/git errors: records them on the run (failed / rate_limited) and the repository, and
        returns; raises only for bugs. RateLimited re-schedules the repository at reset_at.

    IndexResult.as_dict() -> dict[str, Any]   (plain, JSON-able; what the RQ job returns)

How a run survives being killed (SIGKILL, OOM, a deploy) at any point:

* The history cursor lives on the repository: ``indexed_tips`` (commits whose whole history
  is stored) and ``walk_state`` = ``{"revs", "exclude", "done"}`` (a walk in progress). A walk
  is ``git log revs ^exclude``, newest first; every batch of ``INDEX_BATCH_SIZE`` commits is
  written *in one transaction with* ``done += len(batch)``. A later run finishes a pending walk
  first, with the same revs and excludes, skipping the first ``done`` records (git's order is
  deterministic for the same input and objects) -- and checking that those are really stored,
  so even a wrong skip count costs a re-insert, never a gap. Only a finished walk moves
  ``indexed_tips``. Inserts ignore ``(repository_id, sha)`` conflicts: nothing duplicates.
* Branches and tags are re-derived from the mirror on every run (upsert changed, delete gone).
* The pull request cursor (``pull_requests_synced_at``) advances only when a listing has been
  read to the end, committed with its last rows: hosts list newest-updated first, so a cursor
  advanced mid-listing would skip the older pages. Re-reading rows is harmless (upserts).
* A Redis lock (``gcj:index-lock:<id>``, TTL refreshed by a heartbeat) keeps two workers off
  one repository; a lock left by a killed process on this machine is taken over at once.

Rewritten history (force pushes): commits no longer reachable from any branch or tag are
kept, with their links. A commit that was pushed, mentioned in Jira and then rewritten away
did exist; removing it would need a full reachability pass per run, and hosts keep such
commits reachable by sha for a long time too. Branches and tags always show the current state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from connect_app.config import Settings
from connect_app.errors import AppError, HostAuthError, RateLimited
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import Capability, GitHost, PullRequest, RemoteRepository
from connect_app.hosts.weburls import branch_url, commit_url_prefix
from connect_app.indexing import mirror, scheduler, store
from connect_app.indexing.git import CommitRecord, GitRunner
from connect_app.indexing.links import LinkBuilder, delete_links, insert_links, project_filter, replace_links
from connect_app.indexing.runs import error_text, fail_run, finish_run, queue_run, start_run
from connect_app.integrations import host_for, remote_repository
from connect_app.models import (
    Branch,
    Commit,
    IndexRun,
    Integration,
    IntegrationStatus,
    LinkKind,
    PullRequestRecord,
    Repository,
    RepositoryStatus,
    RunStatus,
    Tag,
    Trigger,
    utcnow,
)
from connect_app.runtime import runtime

log = logging.getLogger(__name__)
_T = TypeVar("_T")

LOCK_TTL = timedelta(seconds=60)
LOCK_HEARTBEAT = timedelta(seconds=15)
PR_OVERLAP = timedelta(minutes=5)  # hosts' "updated since" filters are not exact to the second
RATE_LIMIT_FALLBACK = timedelta(minutes=5)  # when a host says "rate limited" without a reset time
SKIPPED = "skipped"
IN_FLIGHT = (RepositoryStatus.QUEUED.value, RepositoryStatus.INDEXING.value)
ORPHANED = "the worker stopped (killed or restarted) before this run finished; a later run resumed its work"


@dataclass
class IndexResult:
    repository_id: int
    run_id: int | None
    status: str  # a RunStatus value, or "skipped"
    commits_seen: int = 0
    commits_linked: int = 0
    branches_seen: int = 0
    tags_seen: int = 0
    pull_requests_seen: int = 0
    links_created: int = 0
    error: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- lock


_REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_TAKE_OVER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0"
)


class LockLost(AppError):
    """Another worker took over this repository's index lock."""

    code = "index_lock_lost"


class IndexLock:
    """``SET gcj:index-lock:<id> <host>:<pid>:<token> NX PX ttl``, kept alive by a heartbeat thread
    (a clone of a big repository writes nothing for minutes). A process killed with SIGKILL leaves
    the key until the TTL ends; a holder on this machine whose process is gone is taken over."""

    def __init__(self, client: Redis, repository_id: int, ttl: timedelta = LOCK_TTL) -> None:
        self.client = client
        self.key = f"gcj:index-lock:{repository_id}"
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self.ttl_ms = int(ttl.total_seconds() * 1000)
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        taken = bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        if not taken:
            holder = self.client.get(self.key)
            if holder is not None and _holder_is_gone(
                holder.decode(errors="replace") if isinstance(holder, bytes) else str(holder)
            ):
                taken = bool(self.client.eval(_TAKE_OVER, 1, self.key, holder, self.token, self.ttl_ms))
                if taken:
                    log.warning("took over %s from a process that no longer exists", self.key)
        if taken:
            self._thread = threading.Thread(target=self._beat, name=f"{self.key}-heartbeat", daemon=True)
            self._thread.start()
        return taken

    def refresh(self) -> bool:
        ok = bool(self.client.eval(_REFRESH, 1, self.key, self.token, self.ttl_ms))
        self.lost = self.lost or not ok
        return ok

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock is no longer ours (called before every commit)."""
        try:
            self.refresh()
        except RedisError:
            log.warning("could not refresh %s; carrying on (writes are idempotent)", self.key, exc_info=True)
        if self.lost:
            raise LockLost("another worker took over the indexing of this repository")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(RedisError):
            self.client.eval(_RELEASE, 1, self.key, self.token)

    def _beat(self) -> None:
        while not self._stop.wait(LOCK_HEARTBEAT.total_seconds()):
            try:
                if not self.refresh():
                    return
            except RedisError:
                log.warning("index lock heartbeat failed for %s", self.key, exc_info=True)


def _holder_is_gone(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# --------------------------------------------------------------------------- entry point


def run_index(repository_id: int, trigger: str | Trigger, run_id: int | None = None) -> IndexResult:
    session = db.session()
    repo = session.get(Repository, repository_id)
    if repo is None:
        return IndexResult(repository_id, run_id, SKIPPED, note="the repository no longer exists")
    integration = session.get(Integration, repo.integration_id)
    if integration is None or integration.tenant_id != repo.tenant_id:
        return IndexResult(repository_id, run_id, SKIPPED, note="the repository's integration no longer exists")
    run = session.get(IndexRun, run_id) if run_id is not None else None
    if run is not None and (run.repository_id != repo.id or run.tenant_id != repo.tenant_id):
        run = None  # not this repository's run: keep a record of our own

    reason = _skip_reason(repo, integration)
    lock = IndexLock(redis_conn.client, repo.id)
    if reason is None and not lock.acquire():
        reason = "already running"
        # The run in progress may have started before whatever asked for this one: ask again.
        if repo.reindex_requested_at is None:
            repo.reindex_requested_at = utcnow()
    if reason is not None:
        if run is not None:
            run.status, run.started_at, run.finished_at = RunStatus.DONE.value, utcnow(), utcnow()
        if reason != "already running" and repo.status in IN_FLIGHT:
            # Queued, then disabled: nothing is in flight any more (the other run owns "indexing").
            repo.status = (RepositoryStatus.OK if repo.last_indexed_at else RepositoryStatus.NEW).value
        session.commit()
        return IndexResult(repo.id, run.id if run else None, SKIPPED, note=reason)

    try:
        if run is None:
            run = queue_run(
                session,
                tenant_id=repo.tenant_id,
                integration_id=integration.id,
                repository_id=repo.id,
                trigger=Trigger(trigger),
            )
        _orphaned_runs(session, repo, run)
        start_run(session, run)
        repo.status = RepositoryStatus.INDEXING.value
        session.commit()
        indexer = RepositoryIndexer(session, repo, integration, run, runtime().settings, lock)
        try:
            indexer.index()
        except RateLimited as e:
            return _rate_limited(session, repo, integration, run, indexer, e)
        except AppError as e:
            return _failed(session, repo, integration, run, indexer, e)
        except Exception as e:
            log.exception("indexing repository %s failed unexpectedly", repo.id)
            _failed(session, repo, integration, run, indexer, e)
            raise  # a bug or an outage: RQ's Retry runs the job again, which resumes
        return indexer.result(RunStatus.DONE)
    finally:
        lock.release()


def _skip_reason(repo: Repository, integration: Integration) -> str | None:
    if not repo.enabled or repo.status == RepositoryStatus.REMOVED.value:
        return "the repository is disabled or removed"
    if integration.status == IntegrationStatus.DISABLED.value:
        return "the integration is disabled"
    return None


def _rate_limited(
    session: Session,
    repo: Repository,
    integration: Integration,
    run: IndexRun,
    indexer: RepositoryIndexer,
    error: RateLimited,
) -> IndexResult:
    fail_run(session, run, error)
    reset_at = error.reset_at or utcnow() + RATE_LIMIT_FALLBACK
    repo.status = RepositoryStatus.RATE_LIMITED.value
    repo.next_index_at = reset_at
    repo.last_error = error_text(error)
    _served_request(session, repo, run)
    session.commit()
    try:  # the budget is the credential's: its other repositories wait too (the dispatcher reads it)
        scheduler.pause_credential(integration.credential_key, reset_at)
    except RedisError:
        log.warning("could not record the rate-limit pause of integration %s", integration.id, exc_info=True)
    log.info("repository %s rate limited until %s", repo.id, reset_at.isoformat())
    return indexer.result(RunStatus.RATE_LIMITED, error=run.error)


def _failed(
    session: Session,
    repo: Repository,
    integration: Integration,
    run: IndexRun,
    indexer: RepositoryIndexer,
    error: Exception,
) -> IndexResult:
    fail_run(session, run, error)
    repo.status = RepositoryStatus.FAILED.value
    repo.last_error = run.error
    _served_request(session, repo, run)
    if isinstance(error, HostAuthError):
        # Every repository of the integration would fail the same way: say so where the admin looks.
        integration.status = IntegrationStatus.AUTH_FAILED.value
        integration.status_detail = run.error
    session.commit()
    if isinstance(error, AppError):
        log.info("indexing repository %s failed: %s", repo.id, run.error)
    return indexer.result(RunStatus.FAILED, error=run.error)


def _served_request(session: Session, repo: Repository, run: IndexRun) -> None:
    """A "reindex now" made before this run started is answered by it, whatever the outcome;
    one made later (a push during the run) is left for the scheduler: no loop here. One
    conditional UPDATE, so a request arriving right now is never lost to a stale read."""
    if run.started_at is None:
        return
    session.execute(
        update(Repository)
        .where(Repository.id == repo.id, Repository.reindex_requested_at <= run.started_at)
        .values(reindex_requested_at=None)
        .execution_options(synchronize_session=False)
    )
    session.expire(repo, ["reindex_requested_at"])


def _orphaned_runs(session: Session, repo: Repository, run: IndexRun) -> None:
    """Runs of this repository still "running" belong to workers that died (we hold the lock)."""
    session.execute(
        update(IndexRun)
        .where(IndexRun.repository_id == repo.id, IndexRun.status == RunStatus.RUNNING.value, IndexRun.id != run.id)
        .values(status=RunStatus.FAILED.value, finished_at=utcnow(), error=ORPHANED)
        .execution_options(synchronize_session=False)
    )


# --------------------------------------------------------------------------- the work


@dataclass
class _Counts:
    commits_seen: int = 0
    commits_linked: int = 0
    branches_seen: int = 0
    tags_seen: int = 0
    pull_requests_seen: int = 0
    links_created: int = 0
    changed: bool = False


@dataclass
class RepositoryIndexer:
    """One run over one repository. Every ``session.commit()`` here stores rows and cursor together."""

    session: Session
    repo: Repository
    integration: Integration
    run: IndexRun
    settings: Settings
    lock: IndexLock
    counts: _Counts = field(default_factory=_Counts)

    def index(self) -> None:
        host = host_for(self.integration)
        remote = remote_repository(self.repo)
        runner = mirror.git_runner()
        path = mirror.mirror_path(self.repo, self.settings.mirrors_dir)
        auth = host.git_auth()
        mirror.ensure_mirror(runner, self.repo, host.clone_url(remote), auth, path)
        self.lock.check()
        links = LinkBuilder(
            self.repo.tenant_id, self.repo.id, project_filter(self.session, self.repo.tenant_id), utcnow()
        )
        refs = mirror.mirror_refs(runner, path)
        self._sync_refs(refs, links)
        self._sync_history(runner, path, refs, links)
        if Capability.PULL_REQUESTS in host.info.capabilities:
            self._sync_pull_requests(host, remote, links)
        self._finish()

    def result(self, status: RunStatus, *, error: str | None = None) -> IndexResult:
        c = self.counts
        return IndexResult(
            self.repo.id,
            self.run.id,
            status.value,
            commits_seen=c.commits_seen,
            commits_linked=c.commits_linked,
            branches_seen=c.branches_seen,
            tags_seen=c.tags_seen,
            pull_requests_seen=c.pull_requests_seen,
            links_created=c.links_created,
            error=error,
        )

    def _commit(self) -> None:
        """Commit, with the counts copied onto the run (the queue viewer shows progress)."""
        self._copy_counts()
        self.lock.check()
        self.session.commit()

    def _copy_counts(self) -> None:
        c, run = self.counts, self.run
        run.commits_seen, run.commits_linked, run.links_created = c.commits_seen, c.commits_linked, c.links_created
        run.branches_seen, run.pull_requests_seen = c.branches_seen, c.pull_requests_seen

    # -- branches and tags
    def _sync_refs(self, refs: mirror.MirrorRefs, links: LinkBuilder) -> None:
        repo, session, now = self.repo, self.session, utcnow()
        branches = {n: s for n, s in refs.branches.items() if len(n) <= 1024}
        tags = {n: s for n, s in refs.tags.items() if len(n) <= 1024}
        self.counts.branches_seen, self.counts.tags_seen = len(branches), len(tags)

        stored = dict(
            session.execute(select(Branch.name, Branch.head_sha).where(Branch.repository_id == repo.id)).all()
        )
        gone = sorted(set(stored) - set(branches))
        moved = [n for n, sha in branches.items() if stored.get(n) != sha]
        for chunk in _chunks(gone, 500):
            session.execute(delete(Branch).where(Branch.repository_id == repo.id, Branch.name.in_(chunk)))
        delete_links(session, repo.id, LinkKind.BRANCH, gone)
        rows = [
            {
                "tenant_id": repo.tenant_id,
                "repository_id": repo.id,
                "name": n,
                "head_sha": branches[n],
                "url": branch_url(repo.provider, repo.web_url, n),
                "updated_at": now,
            }
            for n in moved
        ]
        for chunk in _chunks(rows, 1000):
            store.upsert(
                session,
                Branch,
                chunk,
                keys=("repository_id", "name"),
                update=("head_sha", "url", "updated_at"),
            )
        new = [n for n in moved if n not in stored]
        self.counts.links_created += insert_links(session, [row for n in new for row in links.branch(n)])

        stored_tags = dict(session.execute(select(Tag.name, Tag.sha).where(Tag.repository_id == repo.id)).all())
        gone_tags = sorted(set(stored_tags) - set(tags))
        for chunk in _chunks(gone_tags, 500):
            session.execute(delete(Tag).where(Tag.repository_id == repo.id, Tag.name.in_(chunk)))
        tag_rows = [
            {"tenant_id": repo.tenant_id, "repository_id": repo.id, "name": n, "sha": s}
            for n, s in tags.items()
            if stored_tags.get(n) != s
        ]
        for chunk in _chunks(tag_rows, 1000):
            store.upsert(session, Tag, chunk, keys=("repository_id", "name"), update=("sha",))
        self.counts.changed |= bool(gone or moved or gone_tags or tag_rows)
        self._commit()

    # -- history
    def _sync_history(self, runner: GitRunner, path: Path, refs: mirror.MirrorRefs, links: LinkBuilder) -> None:
        pending = _pending_walk(self.repo.walk_state)
        if pending is not None:
            self._walk(runner, path, links, *pending)
        elif self.repo.walk_state:
            log.warning("repository %s: unreadable walk state dropped; walking from the indexed tips", self.repo.id)
        self._walk(runner, path, links, refs.tips, sorted(set(self.repo.indexed_tips or ())), 0, refs.digest)

    def _walk(
        self,
        runner: GitRunner,
        path: Path,
        links: LinkBuilder,
        revs: list[str],
        exclude: list[str],
        done: int,
        digest: str | None = None,
    ) -> None:
        """``git log revs ^exclude`` into the database, resumable at any batch boundary."""
        size = max(1, self.settings.index_batch_size)
        prepare = CommitRows(
            self.repo.tenant_id, self.repo.id, links, commit_url_prefix(self.repo.provider, self.repo.web_url)
        )
        state: dict[str, Any] = {"revs": revs, "exclude": exclude, "done": done}
        batch: list[PreparedCommit] = []
        with mirror.history(runner, path, revs, exclude, prepare) as commits:
            # Commits a killed run already committed: skipped, but checked (never a gap).
            for chunk in _take_chunks(commits, done, size):
                self._repair(chunk)
            for commit in commits:
                batch.append(commit)
                if len(batch) >= size:
                    state = self._write(batch, state)
                    batch = []
        if batch:
            state = self._write(batch, state)
        self.repo.indexed_tips = revs
        self.repo.walk_state = None
        if digest is not None:
            self.repo.refs_digest = digest
        self._commit()

    def _write(self, batch: list[PreparedCommit], state: dict[str, Any]) -> dict[str, Any]:
        self._store(batch)
        state = {**state, "done": state["done"] + len(batch)}
        self.repo.walk_state = state
        self._commit()
        return state

    def _repair(self, chunk: list[PreparedCommit]) -> None:
        shas = [c.sha for c in chunk]
        query = select(Commit.sha).where(Commit.repository_id == self.repo.id, Commit.sha.in_(shas))
        have = set(self.session.scalars(query))
        missing = [c for c in chunk if c.sha not in have]
        if missing:
            log.warning("repository %s: %d commits of a resumed walk were not stored", self.repo.id, len(missing))
            self._store(missing)
            self._commit()

    def _store(self, commits: list[PreparedCommit]) -> None:
        inserted, linked, created = write_commits(self.session, commits)
        c = self.counts
        c.commits_seen += len(commits)
        c.commits_linked += linked
        c.links_created += created
        c.changed |= inserted > 0
        self.repo.commit_count = (self.repo.commit_count or 0) + inserted

    # -- pull requests
    def _sync_pull_requests(self, host: GitHost, remote: RemoteRepository, links: LinkBuilder) -> None:
        since = self.repo.pull_requests_synced_at
        newest = since
        batch: dict[str, PullRequest] = {}
        size = max(1, min(self.settings.index_batch_size, 500))
        for pr in host.list_pull_requests(remote, updated_since=since - PR_OVERLAP if since else None):
            self.counts.pull_requests_seen += 1
            updated = _aware(pr.updated_at)
            newest = max(newest, updated) if newest else updated
            self.counts.changed |= since is None or updated > since
            batch[pr.external_id] = pr
            if len(batch) >= size:
                self._write_pull_requests(list(batch.values()), links)
                self._commit()
                batch = {}
        self._write_pull_requests(list(batch.values()), links)
        self.repo.pull_requests_synced_at = newest  # the listing was read to its end
        self._commit()

    def _write_pull_requests(self, prs: list[PullRequest], links: LinkBuilder) -> None:
        if not prs:
            return
        repo = self.repo
        rows: list[dict[str, Any]] = [
            {
                "tenant_id": repo.tenant_id,
                "repository_id": repo.id,
                "external_id": pr.external_id[:64],
                "title": _text(pr.title),
                "description": _text(pr.description or ""),
                "state": pr.state.value,
                "source_branch": pr.source_branch[:1024],
                "target_branch": pr.target_branch[:1024],
                "author": pr.author[:255] if pr.author else None,
                "url": pr.url[:2048],
                "created_on_host": _aware(pr.created_at) if pr.created_at else None,
                "updated_on_host": _aware(pr.updated_at),
            }
            for pr in prs
        ]
        update = [k for k in rows[0] if k not in ("tenant_id", "repository_id", "external_id")]
        store.upsert(self.session, PullRequestRecord, rows, keys=("repository_id", "external_id"), update=update)
        link_rows = [
            row
            for pr, r in zip(prs, rows, strict=True)
            for row in links.pull_request(r["external_id"], r["title"], r["description"], pr.source_branch)
        ]
        self.counts.links_created += replace_links(
            self.session, repo.id, LinkKind.PULL_REQUEST, [r["external_id"] for r in rows], link_rows
        )

    # -- the end
    def _finish(self) -> None:
        repo, now = self.repo, utcnow()
        repo.status = RepositoryStatus.OK.value
        repo.last_error = None
        repo.last_indexed_at = now
        if self.counts.changed:
            repo.last_changed_at = now
        _served_request(self.session, repo, self.run)
        scheduler.schedule_next(repo, self.integration, now, trigger=self.run.trigger)
        if self.integration.status == IntegrationStatus.AUTH_FAILED.value:
            # The fetch just authenticated with these credentials: they work again.
            self.integration.status = IntegrationStatus.ACTIVE.value
            self.integration.status_detail = None
        self._copy_counts()
        self.lock.check()
        finish_run(self.session, self.run)  # commits the repository's state with the run's
        c = self.counts
        log.info(
            "indexed repository %s: %d commits (%d linked), %d branches, %d pull requests, %d new links",
            repo.id,
            c.commits_seen,
            c.commits_linked,
            c.branches_seen,
            c.pull_requests_seen,
            c.links_created,
        )


@dataclass(frozen=True, slots=True)
class PreparedCommit:
    """A commit's row and its links' rows, ready to insert."""

    sha: str
    row: dict[str, Any]
    links: list[dict[str, Any]]


@dataclass(frozen=True)
class CommitRows:
    """Turns a :class:`CommitRecord` into a :class:`PreparedCommit` (as ``mirror.history`` streams)."""

    tenant_id: int
    repository_id: int
    links: LinkBuilder
    url: tuple[str, str] | None  # commit URL = url[0] + sha + url[1]

    def __call__(self, r: CommitRecord) -> PreparedCommit:
        row = {
            "tenant_id": self.tenant_id,
            "repository_id": self.repository_id,
            "sha": r.sha,
            "author_name": r.author_name[:255],
            "author_email": r.author_email[:255],
            "authored_at": r.authored_at,
            "committed_at": r.committed_at,
            "message": r.message,
            "files_changed": len(r.files),
            "parent_count": len(r.parents),
            "url": f"{self.url[0]}{r.sha}{self.url[1]}" if self.url else None,
        }
        return PreparedCommit(r.sha, row, self.links.commit(r.sha, r.message))


def write_commits(session: Session, commits: list[PreparedCommit]) -> tuple[int, int, int]:
    """Insert one batch of commits and their links (no commit). Returns (commits inserted,
    commits with a link, links inserted). Module-level so tests can make it fail mid-walk."""
    inserted = store.insert_ignore(session, Commit, [c.row for c in commits], keys=("repository_id", "sha"))
    link_rows = [row for c in commits for row in c.links]
    return inserted, sum(1 for c in commits if c.links), insert_links(session, link_rows)


# --------------------------------------------------------------------------- helpers


def _pending_walk(state: Any) -> tuple[list[str], list[str], int] | None:
    """(revs, exclude, done) of a stored walk, or None when there is none or it is not one we wrote."""
    if not isinstance(state, dict):
        return None
    revs, exclude, done = state.get("revs"), state.get("exclude"), state.get("done")
    if not (isinstance(revs, list) and isinstance(exclude, list) and isinstance(done, int) and done >= 0):
        return None
    if not all(isinstance(x, str) for x in (*revs, *exclude)):
        return None
    return revs, exclude, done


def _take_chunks(items: Iterator[_T], count: int, size: int) -> Iterator[list[_T]]:
    """The first ``count`` items in lists of ``size`` (the rest stay unread)."""
    chunk: list[_T] = []
    for _ in range(count):
        item = next(items, None)
        if item is None:
            break
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _text(value: str) -> str:
    return value.replace("\x00", "")  # PostgreSQL text cannot hold NUL
