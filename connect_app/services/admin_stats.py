"""Read-side numbers for the admin page: per integration and per repository counters,
runs in flight, and the one status word an admin reads at a glance.

Each function is a handful of grouped queries for a whole page (never one per row).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, type_coerce
from sqlalchemy.orm import Session

from connect_app.models import (
    Branch,
    IndexRun,
    Integration,
    IntegrationStatus,
    PullRequestRecord,
    Repository,
    RepositoryStatus,
    RunKind,
    RunStatus,
    UTCDateTime,
)

ACTIVE_RUN = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)


class Status:
    """What the integrations list shows (``Integration.status`` is only active/auth_failed/disabled)."""

    PENDING = "pending"  # no repository and no discovery yet (e.g. the queue was down)
    INDEXING = "indexing"
    INDEXED = "indexed"
    ERROR = "error"
    RATE_LIMITED = "rate_limited"
    DISABLED = "disabled"

    ALL = (PENDING, INDEXING, INDEXED, ERROR, RATE_LIMITED, DISABLED)


@dataclass(frozen=True)
class Counters:
    commits: int = 0
    branches: int = 0
    pull_requests: int = 0


@dataclass
class IntegrationStats:
    repositories: int = 0  # visible on the host (removed ones excluded)
    enabled_repositories: int = 0
    removed_repositories: int = 0
    by_status: Counter[str] = field(default_factory=Counter)  # enabled, visible repositories
    commits: int = 0
    branches: int = 0
    pull_requests: int = 0
    last_indexed_at: datetime | None = None
    discovery: IndexRun | None = None  # the latest discovery run

    @property
    def counters(self) -> Counters:
        return Counters(self.commits, self.branches, self.pull_requests)


def _count_by(
    session: Session, model: type[Branch] | type[PullRequestRecord], tenant_id: int, group: object, where: object
) -> dict[int, int]:
    rows = session.execute(
        select(group, func.count(model.id))  # type: ignore[call-overload]
        .join(Repository, Repository.id == model.repository_id)
        .where(model.tenant_id == tenant_id, where)
        .group_by(group)
    ).all()
    return {int(key): int(count) for key, count in rows}


def integration_stats(
    session: Session, tenant_id: int, integration_ids: Collection[int]
) -> dict[int, IntegrationStats]:
    ids = list(integration_ids)
    stats = {i: IntegrationStats() for i in ids}
    if not ids:
        return stats
    last_indexed = type_coerce(func.max(Repository.last_indexed_at), UTCDateTime())
    rows = session.execute(
        select(
            Repository.integration_id,
            Repository.status,
            Repository.enabled,
            Repository.removed_at.is_(None),
            func.count(Repository.id),
            func.coalesce(func.sum(Repository.commit_count), 0),
            last_indexed,
        )
        .where(Repository.tenant_id == tenant_id, Repository.integration_id.in_(ids))
        .group_by(Repository.integration_id, Repository.status, Repository.enabled, Repository.removed_at.is_(None))
    ).all()
    for integration_id, status, enabled, visible, count, commits, last in rows:
        s = stats[integration_id]
        s.commits += int(commits)
        if last is not None and (s.last_indexed_at is None or last > s.last_indexed_at):
            s.last_indexed_at = last
        if not visible or status == RepositoryStatus.REMOVED.value:
            s.removed_repositories += count
            continue
        s.repositories += count
        if enabled:
            s.enabled_repositories += count
            s.by_status[status] += count
    in_ids = Repository.integration_id.in_(ids)
    for integration_id, n in _count_by(session, Branch, tenant_id, Repository.integration_id, in_ids).items():
        stats[integration_id].branches = n
    for integration_id, n in _count_by(
        session, PullRequestRecord, tenant_id, Repository.integration_id, in_ids
    ).items():
        stats[integration_id].pull_requests = n
    latest = (
        select(func.max(IndexRun.id))
        .where(
            IndexRun.tenant_id == tenant_id, IndexRun.kind == RunKind.DISCOVER.value, IndexRun.integration_id.in_(ids)
        )
        .group_by(IndexRun.integration_id)
    )
    for run in session.scalars(select(IndexRun).where(IndexRun.id.in_(latest))):
        stats[run.integration_id].discovery = run
    return stats


def integration_status(integration: Integration, stats: IntegrationStats) -> tuple[str, str | None]:
    """(status word, detail for the admin) — see :class:`Status`."""
    if integration.status == IntegrationStatus.DISABLED.value:
        return Status.DISABLED, None
    if integration.status == IntegrationStatus.AUTH_FAILED.value:
        return Status.ERROR, integration.status_detail or "The host refused the integration's credentials."
    by = stats.by_status
    discovery = stats.discovery
    if (
        (discovery is not None and discovery.status in ACTIVE_RUN)
        or by[RepositoryStatus.QUEUED.value]
        or by[RepositoryStatus.INDEXING.value]
    ):
        return Status.INDEXING, None
    if by[RepositoryStatus.RATE_LIMITED.value]:
        return (
            Status.RATE_LIMITED,
            f"{by[RepositoryStatus.RATE_LIMITED.value]} repositories wait for the host's rate limit",
        )
    if by[RepositoryStatus.FAILED.value]:
        return Status.ERROR, f"{by[RepositoryStatus.FAILED.value]} repositories failed their last index"
    if discovery is not None and discovery.status == RunStatus.FAILED.value and integration.last_discovered_at is None:
        return Status.ERROR, discovery.error
    if by[RepositoryStatus.NEW.value]:
        return Status.INDEXING, None  # waiting for their first index
    if stats.repositories == 0 and integration.last_discovered_at is None:
        return Status.PENDING, None
    return Status.INDEXED, None


def repository_counters(session: Session, tenant_id: int, repository_ids: Collection[int]) -> dict[int, Counters]:
    ids = list(repository_ids)
    if not ids:
        return {}
    where = Repository.id.in_(ids)
    branches = _count_by(session, Branch, tenant_id, Repository.id, where)
    pulls = _count_by(session, PullRequestRecord, tenant_id, Repository.id, where)
    commits = {
        repository_id: commit_count
        for repository_id, commit_count in session.execute(
            select(Repository.id, Repository.commit_count).where(Repository.tenant_id == tenant_id, where)
        )
    }
    return {i: Counters(int(commits.get(i, 0)), branches.get(i, 0), pulls.get(i, 0)) for i in ids}


def active_runs(session: Session, tenant_id: int, repository_ids: Collection[int]) -> dict[int, IndexRun]:
    """The queued or running index run of each repository (the newest, when several)."""
    ids = list(repository_ids)
    if not ids:
        return {}
    found: dict[int, IndexRun] = {}
    for run in session.scalars(
        select(IndexRun)
        .where(IndexRun.tenant_id == tenant_id, IndexRun.repository_id.in_(ids), IndexRun.status.in_(ACTIVE_RUN))
        .order_by(IndexRun.id)
    ):
        if run.repository_id is not None:
            found[run.repository_id] = run
    return found


RECOMMENDATION_RUNS = 200  # recent finished index runs the recommendation reads
RECOMMENDED_MIN_MINUTES = 15
RECOMMENDED_MAX_MINUTES = 24 * 60
PASS_HEADROOM = 4  # a pass over every repository should take at most a quarter of the interval


@dataclass(frozen=True)
class IntervalHint:
    minutes: int | None  # None: no finished run yet to judge from
    runs: int  # how many runs it is based on
    average_run_seconds: float | None


def recommended_interval(
    session: Session, integration: Integration, enabled_repositories: int, parallel: int
) -> IntervalHint:
    """The reindex interval to suggest beside the setting: long enough that one pass over
    every enabled repository (``parallel`` at a time, the per-credential cap) takes at most a
    quarter of it, so scheduled runs never pile up; rounded up to 5 minutes, within
    [15 min, 24 h]."""
    rows = session.execute(
        select(IndexRun.started_at, IndexRun.finished_at)
        .where(
            IndexRun.integration_id == integration.id,
            IndexRun.kind == RunKind.INDEX.value,
            IndexRun.status == RunStatus.DONE.value,
            IndexRun.started_at.is_not(None),
            IndexRun.finished_at.is_not(None),
        )
        .order_by(IndexRun.id.desc())
        .limit(RECOMMENDATION_RUNS)
    ).all()
    durations = [(finished - started).total_seconds() for started, finished in rows if started and finished]
    if not durations:
        return IntervalHint(None, 0, None)
    average = sum(durations) / len(durations)
    waves = math.ceil(max(1, enabled_repositories) / max(1, parallel))  # one repository's runs never overlap
    pass_minutes = average * waves / 60
    minutes = math.ceil(pass_minutes * PASS_HEADROOM / 5) * 5
    return IntervalHint(
        min(max(minutes, RECOMMENDED_MIN_MINUTES), RECOMMENDED_MAX_MINUTES), len(durations), round(average, 3)
    )
