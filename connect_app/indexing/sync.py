"""index_repository: mirror fetch, history walk with a resumable cursor, refs, pull requests, links.

Public surface (other modules rely on it):

    run_index(repository_id: int, trigger: str | Trigger, run_id: int | None) -> IndexResult
        Runs inside an app context. Creates the IndexRun when run_id is None. Never raises for
        host/git errors: records them on the run (failed / rate_limited) and the repository, and
        returns; raises only for bugs. RateLimited re-schedules the repository at reset_at.

    IndexResult.as_dict() -> dict[str, Any]   (plain, JSON-able; what the RQ job returns)

This module orchestrates one run; the work lives in:

* :mod:`~connect_app.indexing.index_lock` -- the Redis lock (``gcj:index-lock:<id>``, TTL
  refreshed by a heartbeat) that keeps two workers off one repository; a lock left by a
  killed process on this machine is taken over at once.
* :mod:`~connect_app.indexing.history` -- branches and tags from the mirror, and the history
  walk whose cursor (``indexed_tips``, ``walk_state``) is committed with every batch, so a
  run killed at any point resumes without gaps or duplicates.
* :mod:`~connect_app.indexing.pull_requests` -- the host's pull requests, an ``updated_since``
  cursor that advances only when a listing was read to its end, and a daily full listing
  as a backstop for hosts whose incremental listing can miss one.
* :mod:`~connect_app.indexing.relink` -- at the end of a run, links for Jira projects that
  became known while it ran (the run's link filter is read when it starts).

Every ``session.commit()`` of a run stores rows and cursor together, with the run's counts
(the queue viewer shows progress), after checking that the lock is still ours.

Rewritten history (force pushes): commits no longer reachable from any branch or tag are
kept, with their links. A commit that was pushed, mentioned in Jira and then rewritten away
did exist; removing it would need a full reachability pass per run, and hosts keep such
commits reachable by sha for a long time too. Branches and tags always show the current state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import update
from sqlalchemy.orm import Session

from connect_app.config import Settings
from connect_app.errors import AppError, HostAuthError, RateLimited
from connect_app.extensions import db, redis_conn
from connect_app.hosts.base import Capability
from connect_app.indexing import mirror, relink, scheduler
from connect_app.indexing.history import Counts, GitSync
from connect_app.indexing.index_lock import IndexLock, LockLost
from connect_app.indexing.links import LinkBuilder, project_filter
from connect_app.indexing.pull_requests import PullRequestSync
from connect_app.indexing.runs import error_text, fail_run, finish_run, queue_run, start_run
from connect_app.integrations import host_for, remote_repository
from connect_app.models import (
    IndexRun,
    Integration,
    IntegrationStatus,
    Repository,
    RepositoryStatus,
    RunStatus,
    Trigger,
    utcnow,
)
from connect_app.runtime import runtime

log = logging.getLogger(__name__)

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
        # Already running, with our run RUNNING: an earlier attempt of this job holds (or held,
        # killed) the lock -- RQ retried it. Not done: the attempt finishes it, or the run that
        # takes the lock next (_orphaned_runs) or the lost-job reaper closes it as failed.
        earlier_attempt = reason == "already running" and run is not None and run.status == RunStatus.RUNNING.value
        if run is not None and not earlier_attempt:
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
    _catch_up_after_failure(session, run, indexer, error)
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
    _catch_up_after_failure(session, run, indexer, error)
    return indexer.result(RunStatus.FAILED, error=run.error)


def _catch_up_after_failure(session: Session, run: IndexRun, indexer: RepositoryIndexer, error: Exception) -> None:
    """The rows a stopped run committed were linked with its filter too: catch up on projects
    that became known meanwhile (best effort; never hides the run's own error)."""
    if isinstance(error, LockLost):
        return  # the repository is another worker's now
    before = indexer.counts.links_created
    try:
        indexer.catch_up_links()
        run.links_created = indexer.counts.links_created
        session.commit()
    except Exception:
        session.rollback()
        indexer.counts.links_created = before
        log.warning(
            "repository %s: could not link newly known projects after the run stopped", run.repository_id, exc_info=True
        )


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
class RepositoryIndexer:
    """One run over one repository. Every ``session.commit()`` here stores rows and cursor together."""

    session: Session
    repo: Repository
    integration: Integration
    run: IndexRun
    settings: Settings
    lock: IndexLock
    counts: Counts = field(default_factory=Counts)
    links: LinkBuilder | None = None  # once the run has read the tenant's projects

    def index(self) -> None:
        host = host_for(self.integration)
        remote = remote_repository(self.repo)
        runner = mirror.git_runner()
        path = mirror.mirror_path(self.repo, self.settings.mirrors_dir)
        auth = host.git_auth()
        mirror.ensure_mirror(runner, self.repo, host.clone_url(remote), auth, path)
        self.lock.check()
        repo, size = self.repo, self.settings.index_batch_size
        self.links = links = LinkBuilder(
            repo.tenant_id, repo.id, project_filter(self.session, repo.tenant_id), utcnow()
        )
        refs = mirror.mirror_refs(runner, path)
        git = GitSync(self.session, repo, links, self.counts, size, self._commit)
        git.sync_refs(refs)
        git.sync_history(runner, path, refs)
        git.sync_ahead_behind(runner, path, refs)
        if Capability.PULL_REQUESTS in host.info.capabilities:
            PullRequestSync(self.session, repo, links, self.counts, size, self._commit).run(host, remote)
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

    def catch_up_links(self) -> None:
        """Links for projects that became known while this run wrote with its older filter
        (:func:`relink.catch_up`; read only after the run's rows are committed). No commit."""
        if self.links is not None:
            self.counts.links_created += relink.catch_up(
                self.session, self.repo.tenant_id, self.repo.id, self.links.keys
            )

    def _commit(self, before_commit: Callable[[], None] | None = None) -> None:
        """Commit, with the counts copied onto the run (the queue viewer shows progress).
        ``before_commit`` runs once everything is flushed and the lock checked, right before
        the database commits (the history walk lets its reader go on then)."""
        self._copy_counts()
        self.lock.check()
        if before_commit is not None:
            self.session.flush()
            before_commit()
        self.session.commit()

    def _copy_counts(self) -> None:
        c, run = self.counts, self.run
        run.commits_seen, run.commits_linked, run.links_created = c.commits_seen, c.commits_linked, c.links_created
        run.branches_seen, run.pull_requests_seen = c.branches_seen, c.pull_requests_seen

    def _finish(self) -> None:
        repo, now = self.repo, utcnow()
        self.catch_up_links()
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
