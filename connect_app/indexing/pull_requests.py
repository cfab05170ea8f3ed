"""Pull requests of one repository in one index run: the host's listing into ``pull_request``
rows and their issue links.

Cursor
------
``Repository.pull_requests_synced_at`` is the newest ``updated_at`` read. A run asks the host
for what was updated since then (less :data:`PR_OVERLAP`: hosts' "updated since" filters are
not exact to the second). The cursor advances only when a listing has been read to its end,
committed with its last rows: hosts list newest-updated first, so a cursor advanced
mid-listing would skip the older pages. Re-reading rows is harmless (upserts).

Full-scan backstop
------------------
An incremental listing can miss a pull request: Bitbucket Data Center's ``order=NEWEST``
may sort by creation date, so an old pull request merged or declined since can fall behind
the point where its listing stops (see ``hosts/bitbucket_dc.py``); a host's clock or index
can lag too. So once per :data:`PR_FULL_SCAN_INTERVAL` per repository a run lists *every*
pull request (``updated_since=None``) instead, with the same cursor rules. The time that
listing started is kept in ``walk_state["pr_full_scan_at"]`` (ISO 8601), committed with the
listing's last rows and its cursor; a listing that dies (rate limit, crash) leaves it as it
was, so the next run scans in full again. The first listing of a repository is a full one
and stamps it too. A full scan writes only the pull requests whose stored row differs from
what the host says (a missed one, or one whose host did not bump ``updated_at``): a daily
listing of 10,000 unchanged pull requests costs the host calls and one read per page, not
10,000 upserts and link rewrites.

Pull requests that vanished from the host
-----------------------------------------
A pull request stored as ``OPEN`` that a full listing no longer returns (deleted on the
host, or no longer visible to the credentials) is **kept as stored**, with its links; the
run only logs how many there are. Why not delete it or close it:

* Absence from a listing is not proof of deletion. Listings are what the credentials may
  see and what the host's pagination returned: a token that lost access to part of a
  project, a host that caps or drops pages, a permission change being rolled out, would
  turn one incomplete listing into lost data (and lost links in Jira's development panel)
  that only a full reindex could restore. The ``GitHost`` protocol does not say "this
  listing is complete".
* Most hosts cannot delete a pull request at all (GitHub, Azure DevOps, CodeCommit close or
  abandon instead; GitLab only for administrators); Bitbucket can, rarely.
* It matches how rewritten commits are kept (``connect_app.indexing.sync``): what existed
  and may be mentioned in Jira stays; its link opens the host's 404 at worst.
* There is no column to say "gone" and ``state`` has three values the rest of the app
  understands; inventing a fourth (or writing DECLINED, which would be a lie) is a schema
  decision. A host's "pull request deleted" webhook would be the precise signal to act on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.hosts.base import GitHost, PullRequest, PullRequestState, RemoteRepository
from connect_app.indexing import store
from connect_app.indexing.history import Counts
from connect_app.indexing.links import LinkBuilder, replace_links
from connect_app.models import LinkKind, PullRequestRecord, Repository, utcnow

log = logging.getLogger(__name__)

PR_OVERLAP = timedelta(minutes=5)  # hosts' "updated since" filters are not exact to the second
PR_FULL_SCAN_INTERVAL = timedelta(days=1)  # how often a repository's pull requests are listed in full
FULL_SCAN_KEY = "pr_full_scan_at"  # in Repository.walk_state
MAX_BATCH = 500
_KEYS = ("tenant_id", "repository_id", "external_id")
# The stored columns a full scan compares (every column a listing writes).
_COMPARED = (
    "title",
    "description",
    "state",
    "source_branch",
    "target_branch",
    "author",
    "url",
    "created_on_host",
    "updated_on_host",
)


def last_full_scan(repo: Repository) -> datetime | None:
    """When the last complete full listing of ``repo``'s pull requests started, if known."""
    state = repo.walk_state
    value = state.get(FULL_SCAN_KEY) if isinstance(state, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return aware(datetime.fromisoformat(value))
    except ValueError:
        return None


def full_scan_due(repo: Repository, now: datetime, interval: timedelta | None = None) -> bool:
    """True when this run should list every pull request: never listed, never scanned in full,
    or last scanned ``interval`` (default :data:`PR_FULL_SCAN_INTERVAL`) ago, or at a time in
    the future (a clock that went back must not postpone the scan for ever)."""
    if repo.pull_requests_synced_at is None:
        return True
    last = last_full_scan(repo)
    return last is None or last > now or now - last >= (interval or PR_FULL_SCAN_INTERVAL)


@dataclass
class PullRequestSync:
    """``checkpoint`` commits the session (rows and cursor together, after checking the lock)."""

    session: Session
    repo: Repository
    links: LinkBuilder
    counts: Counts
    batch_size: int
    checkpoint: Callable[[], None]

    def run(self, host: GitHost, remote: RemoteRepository) -> None:
        repo, counts = self.repo, self.counts
        started = utcnow()
        since = repo.pull_requests_synced_at
        full = full_scan_due(repo, started)
        newest = since
        seen: set[str] = set()
        batch: dict[str, PullRequest] = {}
        size = max(1, min(self.batch_size, MAX_BATCH))
        listed_since = None if full or since is None else since - PR_OVERLAP
        for pr in host.list_pull_requests(remote, updated_since=listed_since):
            counts.pull_requests_seen += 1
            updated = aware(pr.updated_at)
            newest = max(newest, updated) if newest else updated
            if not full:
                counts.changed |= since is None or updated > since
            batch[pr.external_id] = pr
            if len(batch) >= size:
                seen.update(self._flush(list(batch.values()), full))
                self.checkpoint()
                batch = {}
        seen.update(self._flush(list(batch.values()), full))
        repo.pull_requests_synced_at = newest  # the listing was read to its end
        if full:
            repo.walk_state = {**(repo.walk_state or {}), FULL_SCAN_KEY: started.isoformat()}
            self._report_vanished(seen)
        self.checkpoint()

    def _flush(self, prs: list[PullRequest], full: bool) -> list[str]:
        """Write a page (a full scan: only what differs from the stored rows); returns its ids."""
        rows = [self._row(pr) for pr in prs]
        pairs = list(zip(prs, rows, strict=True))
        if full and pairs:
            stored = self._stored([r["external_id"] for r in rows])
            pairs = [(pr, r) for pr, r in pairs if stored.get(r["external_id"]) != _compared(r)]
            self.counts.changed |= bool(pairs)
        self._write(pairs)
        return [r["external_id"] for r in rows]

    def _row(self, pr: PullRequest) -> dict[str, Any]:
        repo = self.repo
        return {
            "tenant_id": repo.tenant_id,
            "repository_id": repo.id,
            "external_id": pr.external_id[:64],
            "title": text(pr.title),
            "description": text(pr.description or ""),
            "state": pr.state.value,
            "source_branch": pr.source_branch[:1024],
            "target_branch": pr.target_branch[:1024],
            "author": pr.author[:255] if pr.author else None,
            "url": pr.url[:2048],
            "created_on_host": aware(pr.created_at) if pr.created_at else None,
            "updated_on_host": aware(pr.updated_at),
        }

    def _stored(self, ids: list[str]) -> dict[str, tuple[Any, ...]]:
        columns = [PullRequestRecord.external_id, *(getattr(PullRequestRecord, c) for c in _COMPARED)]
        query = select(*columns).where(
            PullRequestRecord.repository_id == self.repo.id, PullRequestRecord.external_id.in_(ids)
        )
        return {row[0]: tuple(row[1:]) for row in self.session.execute(query)}

    def _write(self, pairs: list[tuple[PullRequest, dict[str, Any]]]) -> None:
        if not pairs:
            return
        rows = [r for _, r in pairs]
        update = [k for k in rows[0] if k not in _KEYS]
        store.upsert(self.session, PullRequestRecord, rows, keys=("repository_id", "external_id"), update=update)
        link_rows = [
            row
            for pr, r in pairs
            for row in self.links.pull_request(r["external_id"], r["title"], r["description"], pr.source_branch)
        ]
        self.counts.links_created += replace_links(
            self.session, self.repo.id, LinkKind.PULL_REQUEST, [r["external_id"] for r in rows], link_rows
        )

    def _report_vanished(self, seen: set[str]) -> None:
        """Log the open pull requests a full listing did not return (kept: see the module docstring)."""
        query = select(PullRequestRecord.external_id).where(
            PullRequestRecord.repository_id == self.repo.id,
            PullRequestRecord.state == PullRequestState.OPEN.value,
        )
        vanished = [i for i in self.session.scalars(query) if i not in seen]
        if vanished:
            log.info(
                "repository %s: %d open pull requests were not in the full listing (kept as stored), e.g. %s",
                self.repo.id,
                len(vanished),
                ", ".join(sorted(vanished)[:5]),
            )


def _compared(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in _COMPARED)


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def text(value: str) -> str:
    return value.replace("\x00", "")  # PostgreSQL text cannot hold NUL
