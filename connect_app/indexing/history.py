"""The git side of an index run: branches and tags from the mirror, and the resumable history walk.

How the walk survives being killed (SIGKILL, OOM, a deploy) at any point:

* The cursor lives on the repository: ``indexed_tips`` (commits whose whole history is
  stored) and ``walk_state`` = ``{"revs", "exclude", "done"}`` (a walk in progress). A walk
  is ``git log revs ^exclude``, newest first; every batch of ``INDEX_BATCH_SIZE`` commits is
  written *in one transaction with* ``done += len(batch)``. A later run finishes a pending walk
  first, with the same revs and excludes, skipping the first ``done`` records (git's order is
  deterministic for the same input and objects) -- and checking that those are really stored,
  so even a wrong skip count costs a re-insert, never a gap. Only a finished walk moves
  ``indexed_tips``. Inserts ignore ``(repository_id, sha)`` conflicts: nothing duplicates.
* ``walk_state`` may hold other cursors next to the walk's three keys (the pull request
  full-scan time, :mod:`connect_app.indexing.pull_requests`): the walk keeps them, and leaves
  ``walk_state`` ``None`` only when nothing else is in it.
* Branches and tags are re-derived from the mirror on every run (upsert changed, delete gone).

Speed: ``git log`` is read and turned into rows by a background thread
(:mod:`connect_app.indexing.prefetch`) while this thread writes and commits the previous batch;
the writes, their transactions and their order are the same as without it. With SQLite the
reader builds the next batch during the commit only (sqlite3 gives the GIL up once per row of
an insert, and would wait for it again each time); with PostgreSQL also during the inserts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from connect_app.errors import AppError
from connect_app.hosts.weburls import branch_url, commit_url_prefix
from connect_app.indexing import mirror, store
from connect_app.indexing.commit_branches import BranchLabels
from connect_app.indexing.git import CommitRecord, GitRunner
from connect_app.indexing.links import LinkBuilder, delete_links, insert_link_values, insert_links
from connect_app.indexing.prefetch import Prefetch
from connect_app.models import Branch, Commit, IssueLink, LinkKind, Repository, Tag, utcnow

log = logging.getLogger(__name__)
_T = TypeVar("_T")

WALK_KEYS = ("revs", "exclude", "done")
AHEAD_BEHIND_PER_RUN = 200  # branches counted per run (one git process each)
NAME_LIMIT = 1024  # branch.name / tag.name: longer refs are not stored


@dataclass
class Counts:
    """What a run has done so far (copied onto its IndexRun at every commit)."""

    commits_seen: int = 0
    commits_linked: int = 0
    branches_seen: int = 0
    tags_seen: int = 0
    pull_requests_seen: int = 0
    links_created: int = 0
    changed: bool = False


class Checkpoint(Protocol):
    def __call__(self, before_commit: Callable[[], None] | None = None) -> None:
        """Commit the session (after checking the index lock); ``before_commit`` runs right
        before the database commits, with everything flushed."""


@dataclass
class GitSync:
    """Refs and history of one repository in one run. ``checkpoint`` commits the session
    (rows and cursor together, after checking the index lock); nothing here commits otherwise."""

    session: Session
    repo: Repository
    links: LinkBuilder
    counts: Counts
    batch_size: int
    checkpoint: Checkpoint
    refs: mirror.MirrorRefs | None = None  # the mirror's refs this run (set by sync_history)

    # -- branches and tags
    def sync_refs(self, refs: mirror.MirrorRefs) -> None:
        repo, session, now = self.repo, self.session, utcnow()
        branches = {n: s for n, s in refs.branches.items() if len(n) <= NAME_LIMIT}
        tags = {n: s for n, s in refs.tags.items() if len(n) <= NAME_LIMIT}
        self.counts.branches_seen, self.counts.tags_seen = len(branches), len(tags)

        stored = dict(
            session.execute(select(Branch.name, Branch.head_sha).where(Branch.repository_id == repo.id)).all()
        )
        gone = sorted(set(stored) - set(branches))
        moved = [n for n, sha in branches.items() if stored.get(n) != sha]
        for chunk in chunks(gone, 500):
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
        for page in chunks(rows, 1000):
            store.upsert(
                session, Branch, page, keys=("repository_id", "name"), update=("head_sha", "url", "updated_at")
            )
        new = [n for n in moved if n not in stored]
        self.counts.links_created += insert_links(session, [row for n in new for row in self.links.branch(n)])

        stored_tags = dict(session.execute(select(Tag.name, Tag.sha).where(Tag.repository_id == repo.id)).all())
        gone_tags = sorted(set(stored_tags) - set(tags))
        for chunk in chunks(gone_tags, 500):
            session.execute(delete(Tag).where(Tag.repository_id == repo.id, Tag.name.in_(chunk)))
        tag_rows = [
            {"tenant_id": repo.tenant_id, "repository_id": repo.id, "name": n, "sha": s}
            for n, s in tags.items()
            if stored_tags.get(n) != s
        ]
        for tag_page in chunks(tag_rows, 1000):
            store.upsert(session, Tag, tag_page, keys=("repository_id", "name"), update=("sha",))
        self.counts.changed |= bool(gone or moved or gone_tags or tag_rows)
        self.checkpoint()

    # -- how far linked branches are from the default branch
    def sync_ahead_behind(self, runner: GitRunner, path: Path, refs: mirror.MirrorRefs) -> None:
        """Ahead/behind the default branch for the branches the panel shows (those linked to an
        issue by name) whose head or the default branch's head moved since they were counted. One
        ``git rev-list`` per branch, at most :data:`AHEAD_BEHIND_PER_RUN` per run (newest first);
        the rest follow in later runs. A failed count leaves the old one (shown only while the
        branch's head is the one it was counted at)."""
        repo, session = self.repo, self.session
        default = repo.default_branch
        base = refs.branches.get(default) if default else None
        if base is None:
            return
        linked = select(IssueLink.ref).where(IssueLink.repository_id == repo.id, IssueLink.kind == LinkKind.BRANCH)
        stale = session.execute(
            select(Branch.id, Branch.head_sha)
            .where(
                Branch.repository_id == repo.id,
                Branch.name != default,
                Branch.name.in_(linked),
                or_(
                    Branch.compared_head_sha.is_(None),
                    Branch.compared_head_sha != Branch.head_sha,
                    Branch.compared_default_sha != base,
                ),
            )
            .order_by(Branch.updated_at.desc(), Branch.id.desc())
            .limit(AHEAD_BEHIND_PER_RUN)
        ).all()
        for branch_id, head in stale:
            try:
                ahead, behind = runner.ahead_behind(path, base, head)
            except AppError as e:
                log.warning("repository %s: ahead/behind of branch %s not counted: %s", repo.id, branch_id, e)
                continue
            session.execute(
                update(Branch)
                .where(Branch.id == branch_id)
                # updated_at kept: it orders the panel's branches by their last change, not by this count
                .values(
                    ahead=ahead,
                    behind=behind,
                    compared_head_sha=head,
                    compared_default_sha=base,
                    updated_at=Branch.updated_at,
                )
            )
        if stale:
            self.checkpoint()

    # -- history
    def sync_history(self, runner: GitRunner, path: Path, refs: mirror.MirrorRefs) -> None:
        self.refs = refs
        state = self.repo.walk_state
        pending = pending_walk(state)
        if pending is not None:
            self._walk(runner, path, *pending)
        elif state is not None and (not isinstance(state, dict) or any(k in state for k in WALK_KEYS)):
            log.warning("repository %s: unreadable walk state dropped; walking from the indexed tips", self.repo.id)
        self._walk(runner, path, refs.tips, sorted(set(self.repo.indexed_tips or ())), 0, refs.digest)

    def _walk(
        self,
        runner: GitRunner,
        path: Path,
        revs: list[str],
        exclude: list[str],
        done: int,
        digest: str | None = None,
    ) -> None:
        """``git log revs ^exclude`` into the database, resumable at any batch boundary."""
        size = max(1, self.batch_size)
        repo = self.repo
        prepare = CommitRows(
            repo.tenant_id,
            repo.id,
            self.links,
            commit_url_prefix(repo.provider, repo.web_url),
            BranchLabels(self.refs.branches if self.refs else {}, repo.default_branch),
        )
        state: dict[str, Any] = {"revs": revs, "exclude": exclude, "done": done}
        with mirror.history(runner, path, revs, exclude, prepare) as commits:
            # Commits a killed run already committed: skipped, but checked (never a gap).
            for chunk in take_chunks(commits, done, size):
                self._repair(chunk)
            # SQLite's executemany gives up the GIL once per row: the reader waits while we insert.
            paced = self.session.get_bind().dialect.name == "sqlite"
            with Prefetch(commits, size, paced=paced) as batches:
                for batch in batches:
                    state = self._write(batch, state, batches)
        repo.indexed_tips = revs
        repo.walk_state = walk_extras(repo.walk_state) or None
        if digest is not None:
            repo.refs_digest = digest
        self.checkpoint()

    def _write(
        self, batch: list[PreparedCommit], state: dict[str, Any], batches: Prefetch[PreparedCommit]
    ) -> dict[str, Any]:
        self._store(batch)
        state = {**state, "done": state["done"] + len(batch)}
        self.repo.walk_state = {**walk_extras(self.repo.walk_state), **state}
        self.checkpoint(batches.go_ahead)  # the next batch is read while this one commits
        return state

    def _repair(self, chunk: list[PreparedCommit]) -> None:
        shas = [c.sha for c in chunk]
        query = select(Commit.sha).where(Commit.repository_id == self.repo.id, Commit.sha.in_(shas))
        have = set(self.session.scalars(query))
        missing = [c for c in chunk if c.sha not in have]
        if missing:
            log.warning("repository %s: %d commits of a resumed walk were not stored", self.repo.id, len(missing))
            self._store(missing)
            self.checkpoint()

    def _store(self, commits: list[PreparedCommit]) -> None:
        inserted, linked, created = write_commits(self.session, commits)
        c = self.counts
        c.commits_seen += len(commits)
        c.commits_linked += linked
        c.links_created += created
        c.changed |= inserted > 0
        self.repo.commit_count = (self.repo.commit_count or 0) + inserted


COMMIT_COLUMNS = (
    "tenant_id",
    "repository_id",
    "sha",
    "author_name",
    "author_email",
    "authored_at",
    "committed_at",
    "message",
    "files_changed",
    "parent_count",
    "url",
    "branch",
)


class PreparedCommit(NamedTuple):
    """A commit's row and its links' rows, ready to insert (tuples in :data:`COMMIT_COLUMNS` and
    :data:`~connect_app.indexing.links.LINK_COLUMNS` order). Tuples, no dicts or dataclass: one
    per commit streamed."""

    sha: str
    row: tuple[Any, ...]
    links: list[tuple[Any, ...]]


@dataclass(frozen=True)
class CommitRows:
    """Turns a :class:`CommitRecord` into a :class:`PreparedCommit` (as ``mirror.history`` streams:
    every commit of the walk once, in order, skipped ones of a resumed walk included)."""

    tenant_id: int
    repository_id: int
    links: LinkBuilder
    url: tuple[str, str] | None  # commit URL = url[0] + sha + url[1]
    branches: BranchLabels = field(default_factory=lambda: BranchLabels({}, None))  # stateful: one per walk

    def __call__(self, r: CommitRecord) -> PreparedCommit:
        sha, url = r.sha, self.url
        row = (
            self.tenant_id,
            self.repository_id,
            sha,
            r.author_name[:255],
            r.author_email[:255],
            r.authored_at,
            r.committed_at,
            r.message,
            len(r.files),
            len(r.parents),
            f"{url[0]}{sha}{url[1]}" if url else None,
            self.branches.label(sha, r.parents),
        )
        return PreparedCommit(sha, row, self.links.commit_values(sha, r.message))


def write_commits(session: Session, commits: list[PreparedCommit]) -> tuple[int, int, int]:
    """Insert one batch of commits and their links (no commit). Returns (commits inserted,
    commits with a link, links inserted). Module-level so tests can make it fail mid-walk.

    Rows go in sha order: inserts into the unique indexes, ``(repository_id, sha)`` and the
    links' ``(repository_id, kind, ref, issue_key)``, then touch neighbouring pages (a third
    less work for SQLite than git's order). Row ids within a batch are therefore in sha order;
    readers order history by ``committed_at`` and use the id only to break ties within one
    second, which git's newest-first order did not make meaningful either."""
    ordered = sorted(commits, key=_sha)
    inserted = store.insert_ignore_values(
        session, Commit, COMMIT_COLUMNS, [c.row for c in ordered], keys=("repository_id", "sha")
    )
    link_rows = [row for c in ordered for row in c.links]
    return inserted, sum(1 for c in commits if c.links), insert_link_values(session, link_rows)


def _sha(commit: PreparedCommit) -> str:
    return commit.sha


# --------------------------------------------------------------------------- walk_state


def pending_walk(state: Any) -> tuple[list[str], list[str], int] | None:
    """(revs, exclude, done) of a stored walk, or None when there is none or it is not one we wrote."""
    if not isinstance(state, dict):
        return None
    revs, exclude, done = state.get("revs"), state.get("exclude"), state.get("done")
    if not (isinstance(revs, list) and isinstance(exclude, list) and isinstance(done, int) and done >= 0):
        return None
    if not all(isinstance(x, str) for x in (*revs, *exclude)):
        return None
    return revs, exclude, done


def walk_extras(state: Any) -> dict[str, Any]:
    """The entries of ``walk_state`` that are not the walk's own (other cursors kept there)."""
    if not isinstance(state, dict):
        return {}
    return {k: v for k, v in state.items() if k not in WALK_KEYS}


# --------------------------------------------------------------------------- helpers


def take_chunks(items: Iterator[_T], count: int, size: int) -> Iterator[list[_T]]:
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


def chunks(items: list[_T], size: int) -> Iterable[list[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
