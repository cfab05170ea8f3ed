"""Links for Jira projects the tenant did not have when its content was indexed.

:mod:`connect_app.indexing.links` links only keys of the tenant's known projects, when a
commit, branch or pull request is written. A project that appears later (created in Jira,
restored from the trash, unarchived, made visible to the app, or a key change) would
otherwise only ever be linked from content indexed after the refresh that found it.
:func:`relink_projects` finds the stored content that mentions the new keys and inserts
exactly the links :class:`~connect_app.indexing.links.LinkBuilder` would have made
(same key rules, same ``source`` per key), insert-or-ignore, so running it twice, or
concurrently with an index run, adds nothing twice.

Cost: one pass per repository and table for each group of :data:`KEYS_PER_PASS` keys, the
database filtering with ``LIKE '%KEY-%'`` (a key in text is upper case and always contains
that; branch names match in any case, so ``ILIKE`` there) along the ``(repository_id, ...)``
unique indexes, in keyset pages of :data:`PAGE_SIZE` rows; Python then runs the real key
extractor on the rows that matched. No tenant-wide table scan: ``commit`` has no
``tenant_id`` index.

Who calls it
------------
* ``connect_app.jira.projects.refresh_projects``, after committing a project list that has
  keys the previous one did not have (one transaction per repository).
* :func:`catch_up`, at the end of an index run: a run builds its link filter when it starts,
  so rows it wrote after a refresh committed new keys lack their links; and a refresh's
  relink cannot see rows the run had not committed yet. The run re-reads the projects
  *after* its last rows are committed and relinks its own repository for any key that
  appeared meanwhile: either the refresh committed before that read (the run sees the key)
  or after it (then the refresh's relink, which starts after its own commit, sees the
  run's rows).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from connect_app.indexing.issue_keys import is_issue_key
from connect_app.indexing.links import KeyFilter, LinkBuilder, insert_links, project_filter, prune_unknown_projects
from connect_app.models import Branch, Commit, PullRequestRecord, Repository, utcnow

log = logging.getLogger(__name__)

KEYS_PER_PASS = 50  # project keys looked for in one pass over a table
PAGE_SIZE = 2000  # rows read per query


def relink_projects(
    session: Session,
    tenant_id: int,
    new_keys: Collection[str],
    *,
    repository_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Insert the missing links to the projects ``new_keys`` from the tenant's stored commits
    (messages), branches (names) and pull requests (title, description, source branch); only
    ``repository_id``'s when given. Keys that cannot be a project key are ignored. Does not
    commit. Returns how many links were inserted."""
    keys = sorted({k for k in new_keys if isinstance(k, str) and is_issue_key(f"{k}-1")})
    if not keys:
        return 0
    query = select(Repository.id).where(Repository.tenant_id == tenant_id)
    if repository_id is not None:
        query = query.where(Repository.id == repository_id)
    created = 0
    stamp = now or utcnow()
    for repo_id in session.scalars(query.order_by(Repository.id)).all():
        for group in _chunks(keys, KEYS_PER_PASS):
            links = LinkBuilder(tenant_id, repo_id, KeyFilter(frozenset(group)), stamp)
            created += _relink_repository(session, links, group)
    if created:
        log.info("tenant %s: %d links to newly known projects %s", tenant_id, created, ", ".join(keys[:10]))
    return created


def catch_up(session: Session, tenant_id: int, repository_id: int, used: KeyFilter) -> int:
    """After an index run that linked with ``used``: make its repository's links agree with the
    tenant's projects as they are now. New keys are relinked; when the run linked every key
    (no projects were known) and projects are known now, links to other projects go (as the
    first refresh's prune does). Does not commit. Returns how many links were inserted."""
    current = project_filter(session, tenant_id)
    if current.projects is None:
        return 0  # nothing known (any more): every key is linked from now on
    if used.projects is None:
        prune_unknown_projects(session, tenant_id, repository_id=repository_id)
        return 0
    added = current.projects - used.projects
    return relink_projects(session, tenant_id, added, repository_id=repository_id) if added else 0


def _relink_repository(session: Session, links: LinkBuilder, keys: Sequence[str]) -> int:
    repo_id, created = links.repository_id, 0
    text = [_like(k) for k in keys]
    branch = [_like(k.lower()) for k in keys]

    def has_key(column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        return or_(*(column.like(p, escape="\\") for p in text))

    def has_branch_key(column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        return or_(*(column.ilike(p, escape="\\") for p in branch))

    commits = _pages(session, Commit.sha, [Commit.message], Commit.repository_id == repo_id, has_key(Commit.message))
    for page in commits:
        created += insert_links(session, [row for sha, message in page for row in links.commit(sha, message)])

    for page in _pages(session, Branch.name, [], Branch.repository_id == repo_id, has_branch_key(Branch.name)):
        created += insert_links(session, [row for (name,) in page for row in links.branch(name)])

    pr = PullRequestRecord
    matches = or_(has_key(pr.title), has_key(pr.description), has_branch_key(pr.source_branch))
    pages = _pages(
        session, pr.external_id, [pr.title, pr.description, pr.source_branch], pr.repository_id == repo_id, matches
    )
    for page in pages:
        rows = [row for ref, title, body, source in page for row in links.pull_request(ref, title, body, source)]
        created += insert_links(session, rows)
    return created


def _pages(
    session: Session,
    key: InstrumentedAttribute[str],
    columns: list[InstrumentedAttribute[Any]],
    *where: ColumnElement[bool],
) -> Iterator[list[tuple[Any, ...]]]:
    """Rows ``(key, *columns)`` matching ``where``, in pages ordered by ``key`` (keyset paging
    along the table's ``(repository_id, key)`` unique index)."""
    after: str | None = None
    while True:
        query = select(key, *columns).where(*where)
        if after is not None:
            query = query.where(key > after)
        page = [tuple(row) for row in session.execute(query.order_by(key).limit(PAGE_SIZE))]
        if not page:
            return
        yield page
        if len(page) < PAGE_SIZE:
            return
        after = page[-1][0]


def _like(key: str) -> str:
    """``%KEY-%`` with LIKE's wildcards escaped (``_`` is legal in a project key)."""
    escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}-%"


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
